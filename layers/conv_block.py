"""ConvBlock: base class of the multi-convolution blocks; holds the options every convolution in
a block shares (batch norm, L2 penalty, initializer) and chains sub-layers."""
import keras

from layers.conv_bn_act import BN_MOMENTUM, ConvBNAct


class ConvBlock(keras.layers.Layer):
    """Subclasses create their convolutions with `self.conv(...)` and run chains with `self.chain(...)`."""

    def __init__(self, use_bn=True, weight_decay=0.0, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer

    def conv(self, filters, kernel_size, strides=1, activation="relu", name=None):
        return ConvBNAct(filters, kernel_size, strides, activation, use_bn=self.use_bn, weight_decay=self.weight_decay,
                         kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name=name)

    def depthwise(self, strides, activation):
        """3x3 depthwise convolution (-> BatchNorm) -> activation, as a chain."""
        chain = [keras.layers.DepthwiseConv2D(3, strides, padding="same", use_bias=not self.use_bn, name="depthwise",
                                              depthwise_initializer=self.kernel_initializer, dtype=self.dtype_policy)]
        if self.use_bn:
            chain.append(keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=self.dtype_policy, name="depthwise_bn"))
        return chain + [keras.layers.Activation(activation, dtype=self.dtype_policy)]

    @staticmethod
    def build_chain(layers, input_shape):
        """Build `layers` one after the other; return the chain's output shape."""
        for layer in layers:
            layer.build(input_shape)
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    @staticmethod
    def chain_shape(layers, input_shape):
        for layer in layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    @staticmethod
    def run_chain(layers, x, training=None):
        for layer in layers:
            takes_training = isinstance(layer, (ConvBNAct, ConvBlock, keras.layers.BatchNormalization))
            x = layer(x, training=training) if takes_training else layer(x)
        return x

    def get_config(self):
        return {**super().get_config(), "use_bn": self.use_bn, "weight_decay": self.weight_decay,
                "kernel_initializer": self.kernel_initializer}
