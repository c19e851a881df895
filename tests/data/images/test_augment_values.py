"""Known values of the training augmentation: each random step, alone, is an exact and checkable
transform (a mirror, a shifted window of the reflect-padded image, an affine change of intensity)."""
import numpy as np
import pytest
import tensorflow as tf

from data.images.pipeline import ImageDataConfig, augment_batch, color_jitter

SEED = tf.constant([7, 11], tf.int64)


def _distinct_images(n, h=5, w=7, c=3):
    """Images with every pixel different (so no image equals its mirror, or another window of itself)."""
    pixels = np.arange(n * h * w * c).reshape(n, h, w, c) % 251 + np.arange(n)[:, None, None, None] * 0.25
    return pixels.astype(np.float32)


def _flipped(images, seed):
    out = augment_batch(tf.constant(images), seed, ImageDataConfig(flip=True, crop_padding=0, color_jitter=0.0)).numpy()
    mirrored = images[:, :, ::-1, :]  # left-right: the width axis only
    flipped = []
    for i in range(len(images)):
        if np.array_equal(out[i], mirrored[i]):
            flipped.append(i)
        else:
            np.testing.assert_array_equal(out[i], images[i], err_msg=f"image {i} is neither itself nor its mirror")
    return flipped


def test_flip_alone_mirrors_some_images_exactly_and_leaves_the_others():
    images = _distinct_images(64)
    flipped = _flipped(images, SEED)
    assert 16 <= len(flipped) <= 48, flipped  # each image flips with probability 1/2
    assert _flipped(images, SEED) == flipped  # the seed decides which
    assert _flipped(images, tf.constant([7, 12], tf.int64)) != flipped
    assert _flipped(images[::-1].copy(), SEED) == flipped  # the draw is per position, not per content


def _padded_windows(image, p):
    """Every (2p+1)^2 crop of the image after reflect padding (the edge pixel is not repeated)."""
    h, w = image.shape[:2]
    padded = np.pad(image, [(p, p), (p, p), (0, 0)], mode="reflect")
    return {(dy, dx): padded[dy:dy + h, dx:dx + w] for dy in range(2 * p + 1) for dx in range(2 * p + 1)}


@pytest.mark.parametrize("p", [1, 2])
def test_pad_and_crop_alone_is_an_exact_shifted_window_of_the_reflected_image(p):
    images = _distinct_images(64, h=6, w=8)
    out = augment_batch(tf.constant(images), SEED, ImageDataConfig(flip=False, crop_padding=p, color_jitter=0.0)).numpy()
    offsets = []
    for i in range(len(images)):
        windows = _padded_windows(images[i], p)
        found = [o for o, window in windows.items() if np.allclose(out[i], window, atol=1e-3)]
        assert len(found) == 1, f"image {i} is no exact window of the reflect-padded image (max error from the centre " \
                                f"{np.abs(out[i] - images[i]).max()})"
        offsets.append(found[0])
    # 64 draws of 2p+1 offsets per axis: every offset occurs, the edge ones show reflected pixels
    assert {dy for dy, _ in offsets} == set(range(2 * p + 1)) and {dx for _, dx in offsets} == set(range(2 * p + 1))
    centred = [i for i, o in enumerate(offsets) if o == (p, p)]
    np.testing.assert_allclose(out[centred], images[centred], atol=1e-3)  # offset (p, p): the image itself


def test_shift_by_one_pixel_with_reflection_by_hand():
    """A 1 x 3 grey image [a, b, c] padded by 1 with reflection is [b, a, b, c, b]: the five windows
    across (offset 0..2) are [b, a, b], [a, b, c], [b, c, b] (and likewise down a 3 x 1 image)."""
    row = np.array([10.0, 20.0, 40.0], np.float32)
    images = np.tile(row.reshape(1, 1, 3, 1), (32, 3, 1, 1))  # 3 equal rows: vertical shifts change nothing
    out = augment_batch(tf.constant(images), SEED, ImageDataConfig(flip=False, crop_padding=1)).numpy()
    seen = {tuple(np.round(o[0, :, 0], 3)) for o in out}
    assert seen == {(20.0, 10.0, 20.0), (10.0, 20.0, 40.0), (20.0, 40.0, 20.0)}
    assert all(np.array_equal(o[0], o[r]) for o in out for r in (1, 2))


def test_colour_jitter_zero_is_the_identity():
    images = tf.constant(_distinct_images(8))
    np.testing.assert_allclose(color_jitter(images, SEED, 0.0), images, atol=1e-3)
    np.testing.assert_allclose(color_jitter(images[..., :1], SEED, 0.0), images[..., :1], atol=1e-3)
    np.testing.assert_array_equal(augment_batch(images, SEED, ImageDataConfig(flip=False, crop_padding=0, color_jitter=0.0)), images)


def test_colour_jitter_on_grey_images_is_contrast_about_the_mean_plus_brightness():
    """Grey: out = (x - mean) * contrast + mean + brightness per image, contrast in 1 +- s and brightness
    in +-255 s (away from the clipping). The draws depend on the seed and the batch size only, so a
    batch of flat images (where contrast does nothing) shows each image's brightness."""
    s = 0.2
    images = np.random.default_rng(0).uniform(100, 150, (16, 6, 6, 1)).astype(np.float32)
    means = images.mean(axis=(1, 2, 3), keepdims=True)
    flat = np.broadcast_to(means, images.shape).astype(np.float32)
    brightness = (color_jitter(tf.constant(flat), SEED, s).numpy() - flat).mean(axis=(1, 2, 3))
    out = color_jitter(tf.constant(images), SEED, s).numpy()
    contrasts = []
    for x, y, mean, shift in zip(images, out, means, brightness):
        contrast = np.polyfit(x.ravel(), y.ravel(), 1)[0]
        np.testing.assert_allclose(y, (x - mean) * contrast + mean + shift, atol=1e-2)
        contrasts.append(contrast)
    contrasts = np.array(contrasts)
    assert np.all(np.abs(contrasts - 1) <= s + 1e-4) and np.all(np.abs(brightness) <= 255 * s + 1e-2)
    assert np.ptp(contrasts) > 0.05 and np.ptp(brightness) > 10  # drawn per image


def test_colour_jitter_keeps_grey_pixels_grey_and_clips():
    """Saturation moves colours away from or toward their grey; a grey RGB pixel has nothing to move."""
    grey = np.repeat(np.random.default_rng(1).uniform(0, 255, (8, 4, 4, 1)), 3, axis=-1).astype(np.float32)
    out = color_jitter(tf.constant(grey), SEED, 0.9).numpy()
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-3)
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-3)
    assert out.min() >= 0 and out.max() <= 255 and (out == 0).any() | (out == 255).any()


def test_colour_jitter_saturation_scales_each_pixel_about_its_own_grey():
    """RGB: after the same brightness and contrast as its grey copy (channel mean per pixel; same image
    mean), each pixel keeps its grey and its colour (x - grey) is scaled by contrast * saturation,
    one factor per image within (1 +- s)^2."""
    s = 0.2
    rgb = np.random.default_rng(2).uniform(100, 150, (16, 5, 5, 3)).astype(np.float32)
    grey = np.repeat(rgb.mean(axis=-1, keepdims=True), 3, axis=-1)
    out_rgb = color_jitter(tf.constant(rgb), SEED, s).numpy()
    out_grey = color_jitter(tf.constant(grey), SEED, s).numpy()
    np.testing.assert_allclose(out_rgb.mean(axis=-1), out_grey[..., 0], atol=1e-3)  # the grey stays
    factors = []
    for colour, jittered, base in zip(rgb - grey, out_rgb, out_grey):
        factor = (colour * (jittered - base)).sum() / (colour ** 2).sum()
        np.testing.assert_allclose(jittered - base, factor * colour, atol=1e-2)
        factors.append(factor)
    assert np.all((np.array(factors) >= (1 - s) ** 2 - 1e-4) & (np.array(factors) <= (1 + s) ** 2 + 1e-4))
