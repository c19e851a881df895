import pytest

from layers import NiNBlock
from tests.layers.layer_checks import check_forward, check_gradients, check_output_shape, check_save_reload, stock_conv_bn_act


def test_shapes_and_weights():
    layer = NiNBlock(6, 5, 2)
    check_output_shape(layer, (2, 8, 8, 3), (2, 4, 4, 6))
    assert [tuple(w.shape) for w in layer.trainable_weights][::3] == [(5, 5, 3, 6), (1, 1, 6, 6), (1, 1, 6, 6)]


def test_gradients():
    check_gradients(lambda **kw: NiNBlock(2, 3, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(NiNBlock(4, 3), (2, 5, 5, 3), tmp_path)


@pytest.mark.parametrize("kernel_size, strides", [(3, 1), (5, 2)])
def test_forward_equals_stock_layers(kernel_size, strides):
    """k x k conv(strides)-BN-relu -> 1x1 conv-BN-relu -> 1x1 conv-BN-relu."""
    layer = NiNBlock(4, kernel_size, strides)

    def reference(x, training):
        y = stock_conv_bn_act(layer.convs[0], x, training, 4, kernel_size, strides)
        y = stock_conv_bn_act(layer.convs[1], y, training, 4, 1)
        return stock_conv_bn_act(layer.convs[2], y, training, 4, 1)

    check_forward(layer, reference, (3, 7, 7, 3))
