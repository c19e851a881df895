"""DenseBlock: DenseNet's block where each layer sees the concatenation of all earlier outputs."""
import keras

from layers.conv_block import ConvBlock


@keras.saving.register_keras_serializable(package="suite")
class DenseBlock(ConvBlock):
    """`num_layers` (1x1 bottleneck ->) 3x3 convs, each adding `growth_rate` channels (Huang et al. 2017).

    >>> DenseBlock(3, 4)(keras.ops.zeros((1, 8, 8, 6))).shape
    (1, 8, 8, 18)
    """

    def __init__(self, num_layers, growth_rate, bottleneck=True, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.growth_rate = growth_rate
        self.bottleneck = bottleneck
        self.units = []
        for i in range(num_layers):
            unit = [self.conv(4 * growth_rate, 1, name=f"unit{i}_bottleneck")] if bottleneck else []
            self.units.append(unit + [self.conv(growth_rate, 3, name=f"unit{i}_conv")])
        self.concat = keras.layers.Concatenate(dtype=self.dtype_policy)

    def build(self, input_shape):
        for i, unit in enumerate(self.units):
            self.build_chain(unit, (*input_shape[:-1], input_shape[-1] + i * self.growth_rate))

    def call(self, x, training=None):
        for unit in self.units:
            x = self.concat([x, self.run_chain(unit, x, training)])
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_layers * self.growth_rate)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "growth_rate": self.growth_rate,
                "bottleneck": self.bottleneck}
