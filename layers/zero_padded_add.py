"""ZeroPaddedAdd: the sum of two feature maps of different sizes, the smaller zero-padded at the end."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="suite")
class ZeroPaddedAdd(keras.layers.Layer):
    """a + b where each map is first zero-padded at the bottom, right and in its last channels to the
    larger of the two heights, widths and channel counts: dlib's `add_prev`. It is the shortcut of
    dlib's downsampling residual blocks (a 2x2 average pool of the input, with half the channels of
    the strided convolution branch and, on an even input size, a row and column more), which is why
    it pads instead of projecting with a 1x1 convolution (He et al.'s option B).

    >>> ZeroPaddedAdd()([keras.ops.ones((1, 3, 3, 4)), keras.ops.ones((1, 4, 4, 2))]).shape
    (1, 4, 4, 4)
    """

    def call(self, inputs):
        a, b = inputs
        shape_a, shape_b = ops.shape(a), ops.shape(b)
        target = [_larger(shape_a[i], shape_b[i]) for i in (1, 2, 3)]
        return _pad_to(a, shape_a, target) + _pad_to(b, shape_b, target)

    def compute_output_shape(self, input_shape):
        shape_a, shape_b = input_shape
        return (shape_a[0], *(None if s is None or t is None else max(s, t) for s, t in zip(shape_a[1:], shape_b[1:])))


def _larger(s, t):
    return max(s, t) if isinstance(s, int) and isinstance(t, int) else ops.maximum(s, t)


def _pad_to(x, shape, target):
    if all(isinstance(s, int) and isinstance(t, int) and s == t for s, t in zip(shape[1:], target)):
        return x
    return ops.pad(x, [[0, 0]] + [[0, t - s] for s, t in zip(shape[1:], target)])
