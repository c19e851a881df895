"""NiNBlock: Network-in-Network's k x k convolution followed by two 1x1 "micro-MLP" convolutions."""
import keras

from layers.conv_bn_act import ConvBNAct


@keras.saving.register_keras_serializable(package="suite")
class NiNBlock(keras.layers.Layer):
    """conv(k, strides) -> 1x1 -> 1x1, each with (optional) batch norm and ReLU (Lin et al. 2013).

    >>> NiNBlock(8, 5, 2)(keras.ops.zeros((1, 8, 8, 3))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, kernel_size=3, strides=1, use_bn=True, weight_decay=0.0,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer
        common = dict(use_bn=use_bn, weight_decay=weight_decay, kernel_initializer=kernel_initializer, dtype=self.dtype_policy)
        self.convs = [ConvBNAct(filters, kernel_size, strides, name="conv", **common),
                      ConvBNAct(filters, 1, name="mlp1", **common),
                      ConvBNAct(filters, 1, name="mlp2", **common)]

    def build(self, input_shape):
        for conv in self.convs:
            conv.build(input_shape)
            input_shape = conv.compute_output_shape(input_shape)

    def call(self, x, training=None):
        for conv in self.convs:
            x = conv(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return self.convs[0].compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "use_bn": self.use_bn, "weight_decay": self.weight_decay,
                "kernel_initializer": self.kernel_initializer}
