"""embedder_of: the embedding part of a face model, plain or with the flip test (a face and its mirror image
through the network, their normalised mean)."""
import numpy as np
import pytest

from apps.face_verification.model import ModelConfig, build_embedder, embedder_of, embedding_function

SMALL = ModelConfig(backbone="resnet", weights=None, width=4, depth=1, embedding_dim=8)


@pytest.mark.parametrize("pair_head", [False, True])
def test_flip_test_is_the_normalised_mean_of_a_face_and_its_mirror(pair_head):
    model = build_embedder(SMALL, 32, pair_head=pair_head)
    plain = embedder_of(model)
    faces = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    mirrored = faces[:, :, ::-1]  # (batch, height, width, channels): left-right
    expected = plain(faces).numpy() + plain(mirrored).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    flip = embedder_of(model, flip_test=True)
    assert flip.output_shape == (None, 8)
    np.testing.assert_allclose(flip(faces).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(flip(mirrored).numpy(), expected, atol=1e-6)
    assert not np.allclose(plain(faces).numpy(), plain(mirrored).numpy(), atol=1e-3)  # the plain network is not symmetric
    np.testing.assert_allclose(embedding_function(model, flip_test=True, batch_size=2)(faces), expected, atol=1e-6)
