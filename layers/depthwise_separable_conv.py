"""DepthwiseSeparableConv: MobileNet v1's 3x3 depthwise conv then 1x1 pointwise conv, each BN-ReLU."""
import keras

from layers.conv_bn_act import BN_MOMENTUM, ConvBNAct


@keras.saving.register_keras_serializable(package="suite")
class DepthwiseSeparableConv(keras.layers.Layer):
    """About 8-9x fewer multiply-adds than a full 3x3 convolution (Howard et al. 2017).

    >>> DepthwiseSeparableConv(8, strides=2)(keras.ops.zeros((1, 8, 8, 4))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, filters, strides=1, use_bn=True, weight_decay=0.0, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer
        self.depthwise = keras.layers.DepthwiseConv2D(3, strides, padding="same", use_bias=not use_bn,
                                                      depthwise_initializer=kernel_initializer, dtype=self.dtype_policy, name="depthwise")
        self.bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=self.dtype_policy, name="depthwise_bn") if use_bn else None
        self.relu = keras.layers.ReLU(dtype=self.dtype_policy)
        self.pointwise = ConvBNAct(filters, 1, use_bn=use_bn, weight_decay=weight_decay,
                                   kernel_initializer=kernel_initializer, dtype=self.dtype_policy, name="pointwise")

    def build(self, input_shape):
        self.depthwise.build(input_shape)
        shape = self.depthwise.compute_output_shape(input_shape)
        if self.bn:
            self.bn.build(shape)
        self.pointwise.build(shape)

    def call(self, x, training=None):
        x = self.depthwise(x)
        if self.bn:
            x = self.bn(x, training=training)
        return self.pointwise(self.relu(x), training=training)

    def compute_output_shape(self, input_shape):
        return self.pointwise.compute_output_shape(self.depthwise.compute_output_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides, "use_bn": self.use_bn,
                "weight_decay": self.weight_decay, "kernel_initializer": self.kernel_initializer}
