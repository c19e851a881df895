import keras
import pytest

from layers import DenseBlock
from tests.layers.layer_checks import check_forward, check_gradients, check_output_shape, check_save_reload, stock_conv_bn_act


def test_each_layer_adds_growth_rate_channels():
    check_output_shape(DenseBlock(3, 4), (2, 5, 5, 6), (2, 5, 5, 18))
    check_output_shape(DenseBlock(2, 3, bottleneck=False), (1, 4, 4, 2), (1, 4, 4, 8))


def test_gradients():
    check_gradients(lambda **kw: DenseBlock(2, 2, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(DenseBlock(2, 4), (2, 5, 5, 3), tmp_path)


@pytest.mark.parametrize("bottleneck", [True, False])
def test_forward_equals_stock_layers(bottleneck):
    """Each unit ((1x1 conv-BN-relu to 4 * growth ->) 3x3 conv-BN-relu to growth) sees the
    concatenation of the input and every earlier unit's output, and appends its own."""
    layer = DenseBlock(3, 2, bottleneck=bottleneck)

    def reference(x, training):
        for unit in layer.units:
            y = stock_conv_bn_act(unit[0], x, training, 8, 1) if bottleneck else x
            y = stock_conv_bn_act(unit[-1], y, training, 2, 3)
            x = keras.layers.Concatenate()([x, y])
        return x

    check_forward(layer, reference, (3, 5, 5, 3))
