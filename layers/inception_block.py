"""InceptionBlock: GoogLeNet's four parallel paths (1x1; 1x1-3x3; 1x1-5x5; pool-1x1), concatenated."""
import keras

from layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="suite")
class InceptionBlock(ConvBlock):
    """Output channels = c1 + c3 + c5 + pool_proj (Szegedy et al. 2015, with batch norm).

    >>> InceptionBlock(4, 4, 8, 2, 4, 4)(keras.ops.zeros((1, 8, 8, 3))).shape
    (1, 8, 8, 20)
    """

    def __init__(self, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, **kwargs):
        super().__init__(**kwargs)
        self.c1, self.c3_reduce, self.c3 = c1, c3_reduce, c3
        self.c5_reduce, self.c5, self.pool_proj = c5_reduce, c5, pool_proj
        self.branches = [
            [self.conv(c1, 1, name="b1_1x1")],
            [self.conv(c3_reduce, 1, name="b3_reduce"), self.conv(c3, 3, name="b3_3x3")],
            [self.conv(c5_reduce, 1, name="b5_reduce"), self.conv(c5, 5, name="b5_5x5")],
            [keras.layers.MaxPooling2D(3, 1, padding="same", dtype=self.dtype_policy), self.conv(pool_proj, 1, name="pool_proj")],
        ]
        self.concat = keras.layers.Concatenate(dtype=self.dtype_policy)

    def build(self, input_shape):
        for branch in self.branches:
            self.build_chain(branch, input_shape)

    def call(self, x, training=None):
        return self.concat([self.run_chain(branch, x, training) for branch in self.branches])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.c1 + self.c3 + self.c5 + self.pool_proj)

    def get_config(self):
        return {**super().get_config(), "c1": self.c1, "c3_reduce": self.c3_reduce, "c3": self.c3,
                "c5_reduce": self.c5_reduce, "c5": self.c5, "pool_proj": self.pool_proj}
