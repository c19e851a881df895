"""BilinearUpsampling: a Conv2DTranspose kernel that starts as bilinear interpolation (FCN's initialisation).

Long et al. (2015) initialise their upsampling layers so that, before training, a stride-f transposed
convolution with a 2f x 2f kernel interpolates each channel bilinearly; training may then learn a
better upsampling. With Keras' padding="same", such a layer reproduces half-pixel-centre bilinear
resizing (`keras.ops.image.resize(..., "bilinear")`) away from the borders (at the borders it sees
zeros where resizing repeats the edge).
"""
import keras
import numpy as np


def bilinear_kernel_1d(size):
    """FCN's 1-D interpolation weights for a kernel of `size` taps (factor = ceil(size / 2))."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - center) / factor


@keras.saving.register_keras_serializable(package="suite")
class BilinearUpsampling(keras.initializers.Initializer):
    """Kernel (kh, kw, out_channels, in_channels) with the bilinear filter on the channel diagonal
    (channel c from channel c) and zeros elsewhere; for upsampling by f use kernel_size 2f, strides f.

    >>> up = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", use_bias=False,
    ...                                   kernel_initializer=BilinearUpsampling())
    >>> up(keras.ops.ones((1, 4, 4, 3))).shape
    (1, 8, 8, 3)
    """

    def __call__(self, shape, dtype=None):
        if len(shape) != 4:
            raise ValueError(f"BilinearUpsampling initialises 4-D Conv2DTranspose kernels; got shape {tuple(shape)}")
        kh, kw, out_channels, in_channels = shape
        filt = np.outer(bilinear_kernel_1d(kh), bilinear_kernel_1d(kw))
        kernel = np.zeros(shape, np.float32)
        for c in range(min(out_channels, in_channels)):
            kernel[:, :, c, c] = filt
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or keras.backend.floatx())

    def get_config(self):
        return {}
