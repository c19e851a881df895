"""InvertedResidual: MobileNetV2's expand (1x1) -> depthwise 3x3 -> linear project (1x1) block,
with a residual connection when stride is 1 and the channel count is unchanged."""
import keras

from layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="suite")
class InvertedResidual(ConvBlock):
    """Sandler et al. 2018; ReLU6 inside, no activation after the projection (a linear bottleneck).

    >>> InvertedResidual(8, strides=2)(keras.ops.zeros((1, 8, 8, 4))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, expansion=6, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.expansion = expansion
        self.expand = None
        self.tail = self.depthwise(strides, "relu6") + [self.conv(filters, 1, activation=None, name="project")]
        self.use_residual = False

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.expansion != 1:
            self.expand = self.conv(channels * self.expansion, 1, activation="relu6", name="expand")
            input_shape = self.build_chain([self.expand], input_shape)
        self.build_chain(self.tail, input_shape)
        self.use_residual = self.strides == 1 and channels == self.filters

    def call(self, x, training=None):
        y = self.expand(x, training=training) if self.expand else x
        y = self.run_chain(self.tail, y, training)
        return x + y if self.use_residual else y

    def compute_output_shape(self, input_shape):
        return self.chain_shape(self.tail, input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides, "expansion": self.expansion}
