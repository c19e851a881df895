import keras
import numpy as np
import pytest

from layers.initializers import BilinearUpsampling


def upsampler(factor, channels=2):
    return keras.layers.Conv2DTranspose(channels, 2 * factor, strides=factor, padding="same", use_bias=False,
                                        kernel_initializer=BilinearUpsampling())


def test_factor_2_kernel_known_values():
    kernel = np.asarray(BilinearUpsampling()((4, 4, 2, 2)))
    taps = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(kernel[:, :, 0, 0], np.outer(taps, taps))
    assert kernel[1, 2, 1, 1] == pytest.approx(0.5625)
    assert not kernel[:, :, 0, 1].any() and not kernel[:, :, 1, 0].any()  # channels do not mix


def test_odd_kernel_is_centred():
    """FCN's rule for odd sizes: factor ceil(k/2), centre factor - 1 (3 taps: 0.5, 1, 0.5)."""
    kernel = np.asarray(BilinearUpsampling()((3, 3, 1, 1)))[:, :, 0, 0]
    np.testing.assert_allclose(kernel, np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_transposed_conv_is_bilinear_resize_in_the_interior(factor):
    """On a 2-D ramp (and a second channel of random values) the layer equals half-pixel bilinear
    resizing wherever the kernel does not reach past the border."""
    n = 8
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ramp = 3.0 * rows - 2.0 * cols + 1.0
    noise = np.random.default_rng(0).normal(size=(n, n))
    x = np.stack([ramp, noise], -1)[None].astype("float32")
    y = np.asarray(upsampler(factor)(x))
    expected = np.asarray(keras.ops.image.resize(x, (n * factor, n * factor), interpolation="bilinear",
                                                 antialias=False))
    inner = slice(factor, -factor)
    np.testing.assert_allclose(y[:, inner, inner], expected[:, inner, inner], atol=1e-4)
    # the ramp interpolates exactly: a linear function of the output pixel centres
    centres = (np.arange(n * factor) + 0.5) / factor - 0.5
    r, c = np.meshgrid(centres, centres, indexing="ij")
    np.testing.assert_allclose(y[0, inner, inner, 0], (3 * r - 2 * c + 1)[inner, inner], atol=1e-4)


def test_serialises_by_registered_name(tmp_path):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, upsampler(2)(inputs))
    path = tmp_path / "up.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded.layers[1].kernel_initializer, BilinearUpsampling)
    assert keras.saving.serialize_keras_object(BilinearUpsampling())["registered_name"] == "suite>BilinearUpsampling"
    x = np.random.default_rng(1).normal(size=(1, 3, 5, 2)).astype("float32")
    np.testing.assert_allclose(model(x), reloaded(x), atol=1e-6)
