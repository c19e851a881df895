"""Reflection padding of H and W, for convolutions whose zero padding would darken the borders."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="suite")
class ReflectionPad2D(keras.layers.Layer):
    """Pads H and W by `padding` pixels on each side with their mirror image (the edge not repeated),
    as Johnson's follow-ups and pytorch-AdaIN do before each convolution: zero padding darkens borders.

    >>> tuple(ReflectionPad2D(2)(keras.ops.zeros((1, 5, 6, 3))).shape)
    (1, 9, 10, 3)
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        grow = lambda n: None if n is None else n + 2 * self.padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
