import keras
import numpy as np
import pytest

from layers import InvertedResidual
from tests.layers.layer_checks import (check_forward, check_gradients, check_output_shape, check_save_reload, stock_conv_bn_act,
                                      with_weights)


def test_residual_only_when_shapes_match():
    same = InvertedResidual(4)
    check_output_shape(same, (2, 6, 6, 4), (2, 6, 6, 4))
    assert same.use_residual
    down = InvertedResidual(8, strides=2)
    check_output_shape(down, (2, 6, 6, 4), (2, 3, 3, 8))
    assert not down.use_residual


def test_expansion_width():
    layer = InvertedResidual(4, expansion=6)
    layer(np.zeros((1, 4, 4, 4), "float32"))
    assert tuple(layer.expand.conv.kernel.shape) == (1, 1, 4, 24)


def test_gradients():
    check_gradients(lambda **kw: InvertedResidual(2, expansion=2, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(InvertedResidual(3, expansion=2), (2, 5, 5, 3), tmp_path)


@pytest.mark.parametrize("in_channels, filters, strides, expansion, residual", [
    (4, 4, 1, 2, True), (4, 6, 1, 3, False), (4, 4, 2, 2, False), (4, 4, 1, 1, True)])
def test_forward_equals_stock_layers(in_channels, filters, strides, expansion, residual):
    """(1x1 conv-BN-relu6 to in * expansion ->) depthwise 3x3(strides)-BN-relu6 -> 1x1 conv-BN (linear),
    plus the input when strides is 1 and the channel count is unchanged."""
    layer = InvertedResidual(filters, strides=strides, expansion=expansion)

    def reference(x, training):
        y = stock_conv_bn_act(layer.expand, x, training, in_channels * expansion, 1, activation="relu6") if expansion != 1 else x
        y = with_weights(keras.layers.DepthwiseConv2D(3, strides, padding="same", use_bias=False), layer.tail[0], y)
        y = keras.layers.ReLU(max_value=6.0)(with_weights(keras.layers.BatchNormalization(), layer.tail[1], y, training=training))
        y = stock_conv_bn_act(layer.tail[-1], y, training, filters, 1, activation=None)
        return keras.layers.Add()([x, y]) if residual else y

    check_forward(layer, reference, (3, 6, 6, in_channels), input_scale=8.0)  # inputs past ReLU6's cap
