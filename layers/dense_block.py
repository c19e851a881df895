"""DenseBlock: DenseNet's block where each layer sees the concatenation of all earlier outputs."""
import keras

from layers.conv_bn_act import ConvBNAct


@keras.saving.register_keras_serializable(package="suite")
class DenseBlock(keras.layers.Layer):
    """`num_layers` (1x1 bottleneck ->) 3x3 convs, each adding `growth_rate` channels (Huang et al. 2017).

    >>> DenseBlock(3, 4)(keras.ops.zeros((1, 8, 8, 6))).shape
    (1, 8, 8, 18)
    """

    def __init__(self, num_layers, growth_rate, bottleneck=True, use_bn=True, weight_decay=0.0,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.growth_rate = growth_rate
        self.bottleneck = bottleneck
        self.use_bn = use_bn
        self.weight_decay = weight_decay
        self.kernel_initializer = kernel_initializer
        common = dict(use_bn=use_bn, weight_decay=weight_decay, kernel_initializer=kernel_initializer, dtype=self.dtype_policy)
        self.units = []
        for i in range(num_layers):
            unit = [ConvBNAct(4 * growth_rate, 1, name=f"unit{i}_bottleneck", **common)] if bottleneck else []
            unit.append(ConvBNAct(growth_rate, 3, name=f"unit{i}_conv", **common))
            self.units.append(unit)
        self.concat = keras.layers.Concatenate(dtype=self.dtype_policy)

    def build(self, input_shape):
        channels = input_shape[-1]
        for unit in self.units:
            shape = (*input_shape[:-1], channels)
            for layer in unit:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            channels += self.growth_rate

    def call(self, x, training=None):
        for unit in self.units:
            y = x
            for layer in unit:
                y = layer(y, training=training)
            x = self.concat([x, y])
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_layers * self.growth_rate)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "growth_rate": self.growth_rate,
                "bottleneck": self.bottleneck, "use_bn": self.use_bn, "weight_decay": self.weight_decay,
                "kernel_initializer": self.kernel_initializer}
