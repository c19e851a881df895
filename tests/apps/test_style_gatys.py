"""Gatys style transfer by optimisation (apps/style_transfer/gatys.py) on tiny images with SqueezeNet's
embedded ImageNet weights: both optimisers lower the loss, coarse-to-fine ends at the target size,
colour preservation keeps the content's chroma, a run interrupted and resumed equals an uninterrupted
one, a seed repeats a run, and bad layers, weights and images are named in one-line errors."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core.errors import UserError
from apps.style_transfer.features import DEFAULT_LAYERS, FeatureConfig, StyleFeatures, parse_layer_weights
from apps.style_transfer.gatys import GatysConfig, keep_colors, run_gatys, scale_sizes, scale_steps, style_at_area
from backbones import BackboneError
from data.errors import DataError

TINY = GatysConfig(image_size=48, steps=6, save_every=0, checkpoint_every=0)
SQUEEZENET = FeatureConfig("squeezenet", "imagenet")


def tiny(**changes):
    return dataclasses.replace(TINY, **changes)


def picture(h, w, seed):
    """A smooth colour picture with some texture: what a photo or a painting gives the features."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 6, 3)
    base = np.stack([np.sin(6 * x + phase[0]), np.cos(5 * y + phase[1]), np.sin(4 * (x + y) + phase[2])], -1)
    return np.clip(127.5 + 90 * base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


CONTENT = picture(48, 64, seed=1)  # landscape: the long side is the width
STYLE = picture(40, 40, seed=2)


@pytest.fixture(scope="module")
def features():
    return StyleFeatures("squeezenet", "imagenet")


def run(cfg, out, features, **kwargs):
    return run_gatys(CONTENT, STYLE, cfg, out, SQUEEZENET, progress=False, features=features, **kwargs)


def test_feature_layers_and_defaults(features):
    maps = features(np.zeros((1, 48, 64, 3), np.float32))
    content, style = DEFAULT_LAYERS["squeezenet"]
    assert set(maps) == {content, *parse_layer_weights(style)}
    assert features.style_weights == {"conv1": 0.25, "fire2": 0.25, "fire4": 0.25, "fire6": 0.25}
    assert parse_layer_weights("a:0.5, b") == {"a": 0.5, "b": 1.0}
    chosen = StyleFeatures("squeezenet", "imagenet", content_layer="fire7", style_layers="conv1:1,fire3:2")
    assert chosen.content_layer == "fire7" and chosen.style_weights == {"conv1": 1.0, "fire3": 2.0}


def test_adam_lowers_the_loss(tmp_path, features):
    image, history = run(tiny(steps=12), tmp_path, features)
    assert image.shape == (36, 48, 3) and image.dtype == np.uint8  # long side 48, the content's 3:4 kept
    assert len(history["loss"]) == 12 and set(history) == {"loss", "content", "style", "tv"}
    assert np.all(np.diff(history["loss"]) < 0)  # 64434, 56794, ... 38599
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["content"][0] == 0.0  # it starts from the content image
    assert (tmp_path / "result.png").is_file()


def test_lbfgs_lowers_the_loss(tmp_path, features):
    image, history = run(tiny(optimizer="lbfgs", steps=5), tmp_path, features)
    assert image.shape == (36, 48, 3)
    assert len(history["loss"]) == 5  # one entry per iteration, after it (58898, ... 43199)
    assert np.all(np.diff(history["loss"]) < 0) and history["loss"][-1] < 0.8 * history["loss"][0]


def test_coarse_to_fine_changes_scale_and_ends_at_the_target_size(tmp_path, features):
    cfg = tiny(scales="48,64", image_size=80, steps=6, save_every=1)
    assert scale_sizes(cfg) == [48, 64, 80] and scale_steps(cfg) == [2, 2, 2]
    assert scale_steps(tiny(scales="40", steps=7)) == [3, 4] and scale_sizes(tiny(scales="32,48")) == [32, 48]
    image, history = run(cfg, tmp_path, features)
    sizes = {step: Image.open(tmp_path / "steps" / f"step_{step:05d}.png").size for step in range(1, 7)}
    assert sizes == {1: (48, 36), 2: (48, 36), 3: (64, 48), 4: (64, 48), 5: (80, 60), 6: (80, 60)}
    assert image.shape == (60, 80, 3) and len(history["loss"]) == 6


def test_preserve_colors_keeps_the_contents_chroma(tmp_path, features):
    image, _ = run(tiny(preserve_colors=True, steps=4, learning_rate=20.0), tmp_path, features)
    plain, _ = run(tiny(steps=4, learning_rate=20.0), tmp_path / "plain", features)
    content = tf.image.resize(CONTENT, image.shape[:2], antialias=True)  # as the run resizes it (before rounding)
    to_uv = lambda a: tf.image.rgb_to_yuv(tf.cast(a, tf.float32) / 255.0)[..., 1:].numpy()  # noqa: E731
    to_y = lambda a: tf.image.rgb_to_yuv(tf.cast(a, tf.float32) / 255.0)[..., 0].numpy()  # noqa: E731
    assert np.abs(to_uv(image) - to_uv(content)).mean() < 0.01  # rounding, and clipping out of gamut
    assert np.abs(to_uv(plain) - to_uv(content)).mean() > 0.02  # without it the colours move
    assert np.abs(to_y(image) - to_y(plain)).mean() < 0.01  # and the luminance is the stylised one
    mid = np.full((2, 2, 3), 128, np.uint8)
    assert np.array_equal(keep_colors(mid, mid), mid)


@pytest.mark.parametrize("scales", [None, "48"])  # the second resumes inside the last of two scales
def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, features, scales):
    cfg = tiny(steps=6, checkpoint_every=2, scales=scales, init="noise", image_size=64)
    whole, whole_history = run(cfg, tmp_path / "whole", features)

    def stop_at_5(step, parts):
        if step == 5:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut", features, on_step=stop_at_5)
    assert not (tmp_path / "cut" / "result.png").exists()
    seen = []
    resumed, history = run(cfg, tmp_path / "cut", features, on_step=lambda step, parts: seen.append(step))
    assert seen == [5, 6]  # from the checkpoint of step 4
    assert np.array_equal(resumed, whole)
    np.testing.assert_allclose(history["loss"], whole_history["loss"], rtol=1e-5)
    with np.load(tmp_path / "cut" / "checkpoints" / "state.npz") as a, \
            np.load(tmp_path / "whole" / "checkpoints" / "state.npz") as b:
        np.testing.assert_allclose(a["image"], b["image"], atol=1e-5)
    # A finished run returns its result; more steps extend it; other settings are refused.
    again, _ = run(cfg, tmp_path / "cut", features, on_step=lambda step, parts: pytest.fail("ran again"))
    assert np.array_equal(again, whole)
    if scales is None:
        _, longer = run(dataclasses.replace(cfg, steps=8), tmp_path / "cut", features)
        assert len(longer["loss"]) == 8
    with pytest.raises(UserError, match="other inputs or settings"):
        run_gatys(CONTENT, STYLE, cfg, tmp_path / "cut", dataclasses.replace(SQUEEZENET, beta=1.0), progress=False,
                  features=features)


def test_lbfgs_resumes_from_the_saved_image(tmp_path, features):
    cfg = tiny(optimizer="lbfgs", steps=4, checkpoint_every=2)

    def stop_at_3(step, parts):
        if step == 3:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path, features, on_step=stop_at_3)
    seen = []
    image, history = run(cfg, tmp_path, features, on_step=lambda step, parts: seen.append(step))
    assert seen[0] == 3 and len(history["loss"]) == 2 + len(seen)
    assert history["loss"][-1] < history["loss"][0]


def test_a_seed_repeats_a_run(tmp_path, features):
    cfg = tiny(init="noise", steps=3)
    first, _ = run(cfg, tmp_path / "a", features, seed=7)
    second, _ = run(cfg, tmp_path / "b", features, seed=7)
    other, _ = run(cfg, tmp_path / "c", features, seed=8)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_intermediate_images_and_progress(tmp_path, features, capsys):
    run_gatys(CONTENT, STYLE, tiny(steps=4, save_every=2), tmp_path, SQUEEZENET, features=features)
    assert sorted(p.name for p in (tmp_path / "steps").iterdir()) == ["step_00002.png", "step_00004.png"]
    assert Image.open(tmp_path / "steps" / "step_00004.png").size == (48, 36)
    out = capsys.readouterr().out
    assert "4/4" in out and "style:" in out and "scale: 48" in out


def test_images_from_files_of_any_aspect(tmp_path, features):
    Image.fromarray(picture(30, 70, 3)).save(tmp_path / "tall.png")
    Image.fromarray(picture(90, 40, 4)).save(tmp_path / "style.jpg")
    image, _ = run_gatys(tmp_path / "tall.png", tmp_path / "style.jpg", tiny(steps=2, image_size=96), tmp_path / "out",
                         SQUEEZENET, progress=False, features=features)
    assert image.shape == (41, 96, 3)


def test_errors_name_the_layer_the_weights_and_the_image(tmp_path, features):
    with pytest.raises(BackboneError, match="no layer 'fire99'.*conv1, fire2"):
        StyleFeatures("squeezenet", "imagenet", style_layers="conv1:0.5,fire99:0.5")
    with pytest.raises(BackboneError, match="no layer 'block9_conv1'"):
        StyleFeatures("squeezenet", "imagenet", content_layer="block9_conv1")
    with pytest.raises(BackboneError, match="not a number"):
        parse_layer_weights("conv1:heavy")
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(BackboneError, match=f"weights file not found: {missing}"):
        StyleFeatures("VGG16", str(missing))
    with pytest.raises(BackboneError, match="unknown backbone 'VGG99'"):
        StyleFeatures("VGG99", "imagenet")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        run_gatys(bad, STYLE, TINY, tmp_path / "out", SQUEEZENET, progress=False, features=features)
    with pytest.raises(DataError, match="style image not found: .*absent.png"):
        run_gatys(CONTENT, tmp_path / "absent.png", TINY, tmp_path / "out", SQUEEZENET, progress=False, features=features)
    with pytest.raises(UserError, match="scales"):
        run(tiny(scales="64,32"), tmp_path / "out", features)
    with pytest.raises(UserError, match=r"the content is 12x16 pixels \(height x width\) at scale 16, and squeezenet "
                                        r"needs at least 31 on each side"):
        run(tiny(image_size=16), tmp_path / "small", features)


def test_the_smallest_side_is_where_the_network_stops_failing(features):
    assert features.min_side == 31  # SqueezeNet to fire6: three 3x3/2 pools and a 3x3/2 convolution
    assert features(np.zeros((1, 31, 31, 3), np.float32))["fire6"].shape[1:3] == (1, 1)
    with pytest.raises((tf.errors.OpError, ValueError)):  # one pixel less and TensorFlow fails inside the pooling
        features(np.zeros((1, 30, 64, 3), np.float32))


def test_a_long_narrow_style_is_enlarged_to_the_networks_smallest_side(tmp_path, features):
    """A 40:1 strip keeps its centre 16:1 part, 10 pixels high at the content's area, which SqueezeNet's pools
    shrink to nothing: its short side is raised to min_side (aspect kept) instead of the run failing inside
    TensorFlow."""
    strip = picture(6, 240, seed=5)
    image, history = run_gatys(CONTENT, strip, tiny(steps=2), tmp_path, SQUEEZENET, progress=False, features=features)
    assert image.shape == (36, 48, 3) and np.isfinite(history["style"]).all()
    # Longer than 16:1 it keeps its centre 16:1 part, so a 1 x 20,000 banner does not become 31 x 620,000 pixels.
    banner = np.zeros((1, 20000, 3), np.uint8)
    banner[:, 9992:10008] = 255  # the centre 16 columns white
    fitted = style_at_area(banner, 36 * 48, features.min_side).numpy()
    assert fitted.shape == (31, 496, 3) and fitted.min() == 255
    assert style_at_area(picture(30, 40, 6), 36 * 48).shape == (36, 48, 3)  # a usual painting: its area, its aspect
