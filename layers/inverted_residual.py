"""InvertedResidual: MobileNetV2's expand (1x1) -> depthwise 3x3 -> linear project (1x1) block,
with a residual connection when stride is 1 and the channel count is unchanged."""
import keras

from layers.conv_bn_act import BN_MOMENTUM, ConvBNAct


@keras.saving.register_keras_serializable(package="suite")
class InvertedResidual(keras.layers.Layer):
    """Sandler et al. 2018; ReLU6 inside, no activation after the projection (a linear bottleneck).

    >>> InvertedResidual(8, strides=2)(keras.ops.zeros((1, 8, 8, 4))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, expansion=6, use_bn=True, weight_decay=0.0, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.expansion = expansion
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer
        self._common = dict(use_bn=use_bn, weight_decay=weight_decay, kernel_initializer=kernel_initializer, dtype=self.dtype_policy)
        self.depthwise = keras.layers.DepthwiseConv2D(3, strides, padding="same", use_bias=not use_bn,
                                                      depthwise_initializer=kernel_initializer, dtype=self.dtype_policy, name="depthwise")
        self.bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=self.dtype_policy, name="depthwise_bn") if use_bn else None
        self.relu6 = keras.layers.ReLU(6.0, dtype=self.dtype_policy)
        self.project = ConvBNAct(filters, 1, activation=None, name="project", **self._common)
        self.expand = None
        self.use_residual = False

    def build(self, input_shape):
        channels = input_shape[-1]
        shape = input_shape
        if self.expansion != 1:
            self.expand = ConvBNAct(channels * self.expansion, 1, activation="relu6", name="expand", **self._common)
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        if self.bn:
            self.bn.build(shape)
        self.project.build(shape)
        self.use_residual = self.strides == 1 and channels == self.filters

    def call(self, x, training=None):
        y = self.expand(x, training=training) if self.expand else x
        y = self.depthwise(y)
        if self.bn:
            y = self.bn(y, training=training)
        y = self.project(self.relu6(y), training=training)
        return x + y if self.use_residual else y

    def compute_output_shape(self, input_shape):
        return self.project.compute_output_shape(self.depthwise.compute_output_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides, "expansion": self.expansion,
                "use_bn": self.use_bn, "weight_decay": self.weight_decay, "kernel_initializer": self.kernel_initializer}
