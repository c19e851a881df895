"""DepthwiseSeparableConv: MobileNet v1's 3x3 depthwise conv then 1x1 pointwise conv, each BN-ReLU."""
import keras

from layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="suite")
class DepthwiseSeparableConv(ConvBlock):
    """About 8-9x fewer multiply-adds than a full 3x3 convolution (Howard et al. 2017).

    >>> DepthwiseSeparableConv(8, strides=2)(keras.ops.zeros((1, 8, 8, 4))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.parts = self.depthwise(strides, "relu") + [self.conv(filters, 1, name="pointwise")]

    def build(self, input_shape):
        self.build_chain(self.parts, input_shape)

    def call(self, x, training=None):
        return self.run_chain(self.parts, x, training)

    def compute_output_shape(self, input_shape):
        return self.chain_shape(self.parts, input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}
