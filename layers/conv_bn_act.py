"""ConvBNAct: convolution, optional batch norm, activation: the basic unit of every CNN here."""
import keras

# Moving-statistics momentum of every BatchNorm here: 0.9 (PyTorch's 0.1) rather than Keras' 0.99,
# so short CPU runs of a few hundred steps evaluate with settled statistics.
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="suite")
class ConvBNAct(keras.layers.Layer):
    """Conv2D -> BatchNormalization -> activation.

    >>> ConvBNAct(16, 3, strides=2)(keras.ops.zeros((1, 8, 8, 3))).shape
    (1, 4, 4, 16)
    """

    def __init__(self, filters, kernel_size=3, strides=1, activation="relu", use_bn=True,
                 weight_decay=0.0, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer
        # A strided 1x1 convolution is the same as a 1x1 convolution of every s-th pixel, which is how it runs here:
        # oneDNN's strided 1x1 kernels corrupted the heap (a native crash) in training with under 16 channels at
        # batch sizes that are not multiples of 8 (TensorFlow 2.21; e.g. a width-4 or width-8 ResNet at batch 9).
        pointwise = tuple(kernel_size) == (1, 1) if isinstance(kernel_size, (tuple, list)) else kernel_size == 1
        self.subsample = (tuple(strides) if isinstance(strides, (tuple, list)) else (strides, strides)) if pointwise \
            else (1, 1)
        self.conv = keras.layers.Conv2D(
            filters, kernel_size, strides=1 if pointwise else strides, padding="same", use_bias=not use_bn,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=keras.regularizers.L2(weight_decay) if weight_decay else None,
            dtype=self.dtype_policy, name="conv")
        self.bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=self.dtype_policy, name="bn") if use_bn else None
        self.act = keras.layers.Activation(activation, dtype=self.dtype_policy) if activation else None

    def _subsampled(self, shape):
        return (shape[0], *(None if n is None else -(-n // s) for n, s in zip(shape[1:3], self.subsample)), shape[3])

    def build(self, input_shape):
        self.conv.build(self._subsampled(input_shape))
        if self.bn:
            self.bn.build(self.compute_output_shape(input_shape))

    def call(self, x, training=None):
        if self.subsample != (1, 1):
            x = x[:, ::self.subsample[0], ::self.subsample[1], :]
        x = self.conv(x)
        if self.bn:
            x = self.bn(x, training=training)
        return self.act(x) if self.act else x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self._subsampled(input_shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "activation": self.activation, "use_bn": self.use_bn,
                "weight_decay": self.weight_decay, "kernel_initializer": self.kernel_initializer}
