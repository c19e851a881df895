"""NiNBlock: Network-in-Network's k x k convolution followed by two 1x1 "micro-MLP" convolutions."""
import keras

from layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="suite")
class NiNBlock(ConvBlock):
    """conv(k, strides) -> 1x1 -> 1x1, each with (optional) batch norm and ReLU (Lin et al. 2013).

    >>> NiNBlock(8, 5, 2)(keras.ops.zeros((1, 8, 8, 3))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, kernel_size=3, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.convs = [self.conv(filters, kernel_size, strides, name="conv"), self.conv(filters, 1, name="mlp1"),
                      self.conv(filters, 1, name="mlp2")]

    def build(self, input_shape):
        self.build_chain(self.convs, input_shape)

    def call(self, x, training=None):
        return self.run_chain(self.convs, x, training)

    def compute_output_shape(self, input_shape):
        return self.convs[0].compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides}
