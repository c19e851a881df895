"""InceptionBlock: GoogLeNet's four parallel paths (1x1; 1x1-3x3; 1x1-5x5; pool-1x1), concatenated."""
import keras

from layers.conv_bn_act import ConvBNAct


@keras.saving.register_keras_serializable(package="suite")
class InceptionBlock(keras.layers.Layer):
    """Output channels = c1 + c3 + c5 + pool_proj (Szegedy et al. 2015, with batch norm).

    >>> InceptionBlock(4, 4, 8, 2, 4, 4)(keras.ops.zeros((1, 8, 8, 3))).shape
    (1, 8, 8, 20)
    """

    def __init__(self, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, use_bn=True, weight_decay=0.0,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.c1, self.c3_reduce, self.c3 = c1, c3_reduce, c3
        self.c5_reduce, self.c5, self.pool_proj = c5_reduce, c5, pool_proj
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer
        common = dict(use_bn=use_bn, weight_decay=weight_decay, kernel_initializer=kernel_initializer, dtype=self.dtype_policy)
        self.branches = [
            [ConvBNAct(c1, 1, name="b1_1x1", **common)],
            [ConvBNAct(c3_reduce, 1, name="b3_reduce", **common), ConvBNAct(c3, 3, name="b3_3x3", **common)],
            [ConvBNAct(c5_reduce, 1, name="b5_reduce", **common), ConvBNAct(c5, 5, name="b5_5x5", **common)],
            [keras.layers.MaxPooling2D(3, 1, padding="same", dtype=self.dtype_policy), ConvBNAct(pool_proj, 1, name="pool_proj", **common)],
        ]
        self.concat = keras.layers.Concatenate(dtype=self.dtype_policy)

    def build(self, input_shape):
        for branch in self.branches:
            shape = input_shape
            for layer in branch:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def call(self, x, training=None):
        outputs = []
        for branch in self.branches:
            y = x
            for layer in branch:
                y = layer(y, training=training) if isinstance(layer, ConvBNAct) else layer(y)
            outputs.append(y)
        return self.concat(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.c1 + self.c3 + self.c5 + self.pool_proj)

    def get_config(self):
        return {**super().get_config(), "c1": self.c1, "c3_reduce": self.c3_reduce, "c3": self.c3,
                "c5_reduce": self.c5_reduce, "c5": self.c5, "pool_proj": self.pool_proj, "use_bn": self.use_bn,
                "weight_decay": self.weight_decay, "kernel_initializer": self.kernel_initializer}
