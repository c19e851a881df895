"""The Transformer: positional-encoding values, cached decoding equal to the full pass, beam 1 equal to
greedy, tied embeddings, save and reload."""
import re

import keras
import numpy as np
import pytest

from apps.transformer_translation.model import Transformer
from data.text.subword import BOS, EOS
from layers.decoding.search import beam_search, greedy_search


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = Transformer(40, 50, hidden_dim=16, encoder_layers=2, decoder_layers=2, num_heads=2, intermediate_dim=32, dropout=0.0)
    m((np.ones((1, 4), "int32"), np.ones((1, 4), "int32")))
    return m


SOURCE = np.array([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]], np.int32)


def test_positional_encoding_values(model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)) (Vaswani et al. 2017)."""
    d, length = 16, 6
    pe = np.asarray(model.position(np.zeros((1, length, d), "float32")))[0]
    pos, i = np.arange(length)[:, None], np.arange(d // 2)[None, :]
    angle = pos / 10000 ** (2 * i / d)
    np.testing.assert_allclose(pe[:, 0::2], np.sin(angle), atol=1e-5)
    np.testing.assert_allclose(pe[:, 1::2], np.cos(angle), atol=1e-5)
    step = np.asarray(model.position(np.zeros((1, 1, d), "float32"), start_index=4))[0, 0]
    np.testing.assert_allclose(step, pe[4], atol=1e-5)  # the decoding step's encoding of position 4


def test_cached_decoding_equals_the_uncached_pass(model):
    length = 7
    tokens, _ = greedy_search(model.decode_step, model.start_decoding(SOURCE, length), 2, 5, BOS, EOS, length)
    tokens = tokens.numpy()
    target_in = np.concatenate([np.full((2, 1), BOS), tokens[:, :-1]], 1).astype("int32")
    full = keras.ops.log_softmax(model((SOURCE, target_in), training=False), axis=-1).numpy()
    state = model.start_decoding(SOURCE, length)
    for t in range(length):
        log_probs, state, _ = model.decode_step(target_in[:, t], t, state)
        np.testing.assert_allclose(log_probs.numpy(), full[:, t], atol=1e-4)
    np.testing.assert_array_equal(full.argmax(-1), tokens)


def test_beam_one_equals_greedy(model):
    greedy, g_weights = greedy_search(model.decode_step, model.start_decoding(SOURCE, 8), 2, 5, BOS, EOS, 8)
    beam, b_weights = beam_search(model.decode_step, model.start_decoding(SOURCE, 8), 2, 5, BOS, EOS, 8, beam=1, alpha=0.0)
    np.testing.assert_array_equal(greedy.numpy(), beam.numpy())
    np.testing.assert_allclose(g_weights.numpy(), b_weights.numpy(), atol=1e-6)
    assert np.allclose(g_weights.numpy()[1, 0, 3:], 0.0)  # the second source's padding gets no attention


def test_tied_embeddings_share_the_output_matrix(model):
    untied = Transformer(40, 50, hidden_dim=16, encoder_layers=1, decoder_layers=1, num_heads=2, intermediate_dim=32,
                         tie_embeddings=False)
    tied = Transformer(40, 50, hidden_dim=16, encoder_layers=1, decoder_layers=1, num_heads=2, intermediate_dim=32)
    for m in (untied, tied):
        m((np.ones((1, 4), "int32"), np.ones((1, 4), "int32")))
    assert untied.count_params() - tied.count_params() == 50 * 16


def test_save_and_reload(model, tmp_path):
    target_in = np.array([[2, 11, 12], [2, 13, 0]], np.int32)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again((SOURCE, target_in)), model((SOURCE, target_in)), atol=1e-6)


def test_checkpoint_keys_do_not_depend_on_the_models_built_before(model):
    """Checkpoint keys are variable paths: a model built after others in a process (here, after the module's)
    has the names a fresh process gives it, so its run resumes anywhere."""
    from apps.core.checkpoints import model_variables

    again = Transformer(40, 50, hidden_dim=16, encoder_layers=2, decoder_layers=2, num_heads=2, intermediate_dim=32,
                        dropout=0.1)
    again((np.ones((1, 4), "int32"), np.ones((1, 4), "int32")))
    keys = list(model_variables(again))
    numbered = [k for k in keys if re.search(r"seed_generator_\d", k)]
    assert not numbered and all(k.startswith(("transformer/", "seed_generator")) for k in keys), keys
    assert set(keys) >= set(model_variables(model))  # the same paths, and the dropout layers' seeds besides
