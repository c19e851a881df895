"""ResidualBlock: ResNet basic (two 3x3) or bottleneck (1x1-3x3-1x1) block with a projection
shortcut when the stride or channel count changes (He et al. 2016)."""
import keras

from layers.conv_bn_act import ConvBNAct


@keras.saving.register_keras_serializable(package="suite")
class ResidualBlock(keras.layers.Layer):
    """y = relu(F(x) + shortcut(x)); output channels = filters (basic) or filters*expansion (bottleneck).

    >>> ResidualBlock(8, strides=2)(keras.ops.zeros((1, 8, 8, 4))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, bottleneck=False, expansion=4, use_bn=True,
                 weight_decay=0.0, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.bottleneck = bottleneck
        self.expansion = expansion
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer
        common = dict(use_bn=use_bn, weight_decay=weight_decay, kernel_initializer=kernel_initializer, dtype=self.dtype_policy)
        self.out_channels = filters * expansion if bottleneck else filters
        if bottleneck:
            self.convs = [ConvBNAct(filters, 1, name="reduce", **common),
                          ConvBNAct(filters, 3, strides, name="conv", **common),
                          ConvBNAct(self.out_channels, 1, activation=None, name="expand", **common)]
        else:
            self.convs = [ConvBNAct(filters, 3, strides, name="conv1", **common),
                          ConvBNAct(filters, 3, activation=None, name="conv2", **common)]
        self.projection = None
        self.add = keras.layers.Add(dtype=self.dtype_policy)
        self.relu = keras.layers.ReLU(dtype=self.dtype_policy)
        self._common = common

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.out_channels:
            self.projection = ConvBNAct(self.out_channels, 1, self.strides, activation=None, name="projection", **self._common)
            self.projection.build(input_shape)
        shape = input_shape
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, x, training=None):
        y = x
        for conv in self.convs:
            y = conv(y, training=training)
        shortcut = self.projection(x, training=training) if self.projection else x
        return self.relu(self.add([y, shortcut]))

    def compute_output_shape(self, input_shape):
        for conv in self.convs:
            input_shape = conv.compute_output_shape(input_shape)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "bottleneck": self.bottleneck, "expansion": self.expansion, "use_bn": self.use_bn,
                "weight_decay": self.weight_decay, "kernel_initializer": self.kernel_initializer}
