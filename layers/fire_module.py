"""FireModule: SqueezeNet's 1x1 squeeze then parallel 1x1 and 3x3 expands, concatenated."""
import keras


@keras.saving.register_keras_serializable(package="suite")
class FireModule(keras.layers.Layer):
    """Output channels = 2 * expand (Iandola et al. 2016). Sub-layers are named like the
    reference weights (squeeze1x1, expand1x1, expand3x3) so ImageNet weights can be loaded.

    >>> FireModule(4, 8)(keras.ops.zeros((1, 8, 8, 3))).shape
    (1, 8, 8, 16)
    """

    def __init__(self, squeeze, expand, **kwargs):
        super().__init__(**kwargs)
        self.squeeze = squeeze
        self.expand = expand
        conv = dict(activation="relu", dtype=self.dtype_policy)
        self.squeeze1x1 = keras.layers.Conv2D(squeeze, 1, name="squeeze1x1", **conv)
        self.expand1x1 = keras.layers.Conv2D(expand, 1, name="expand1x1", **conv)
        self.expand3x3 = keras.layers.Conv2D(expand, 3, padding="same", name="expand3x3", **conv)
        self.concat = keras.layers.Concatenate(dtype=self.dtype_policy)

    def build(self, input_shape):
        self.squeeze1x1.build(input_shape)
        shape = self.squeeze1x1.compute_output_shape(input_shape)
        self.expand1x1.build(shape)
        self.expand3x3.build(shape)

    def call(self, x):
        s = self.squeeze1x1(x)
        return self.concat([self.expand1x1(s), self.expand3x3(s)])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * self.expand)

    def get_config(self):
        return {**super().get_config(), "squeeze": self.squeeze, "expand": self.expand}
