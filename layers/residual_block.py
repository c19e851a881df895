"""ResidualBlock: ResNet basic (two 3x3) or bottleneck (1x1-3x3-1x1) block with a projection
shortcut when the stride or channel count changes (He et al. 2016)."""
import keras

from layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="suite")
class ResidualBlock(ConvBlock):
    """y = relu(F(x) + shortcut(x)); output channels = filters (basic) or filters*expansion (bottleneck).

    >>> ResidualBlock(8, strides=2)(keras.ops.zeros((1, 8, 8, 4))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, bottleneck=False, expansion=4, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.bottleneck = bottleneck
        self.expansion = expansion
        self.out_channels = filters * expansion if bottleneck else filters
        if bottleneck:
            self.convs = [self.conv(filters, 1, name="reduce"), self.conv(filters, 3, strides, name="conv"),
                          self.conv(self.out_channels, 1, activation=None, name="expand")]
        else:
            self.convs = [self.conv(filters, 3, strides, name="conv1"), self.conv(filters, 3, activation=None, name="conv2")]
        self.projection = None
        self.add = keras.layers.Add(dtype=self.dtype_policy)
        self.relu = keras.layers.ReLU(dtype=self.dtype_policy)

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.out_channels:
            self.projection = self.conv(self.out_channels, 1, self.strides, activation=None, name="projection")
            self.projection.build(input_shape)
        self.build_chain(self.convs, input_shape)

    def call(self, x, training=None):
        y = self.run_chain(self.convs, x, training)
        shortcut = self.projection(x, training=training) if self.projection else x
        return self.relu(self.add([y, shortcut]))

    def compute_output_shape(self, input_shape):
        return self.chain_shape(self.convs, input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "bottleneck": self.bottleneck, "expansion": self.expansion}
