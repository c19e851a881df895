import keras
import pytest

from layers import DepthwiseSeparableConv
from tests.layers.layer_checks import (check_forward, check_gradients, check_output_shape, check_save_reload, stock_conv_bn_act,
                                      with_weights)


def test_shapes_and_weights():
    layer = DepthwiseSeparableConv(8, strides=2)
    check_output_shape(layer, (2, 8, 8, 4), (2, 4, 4, 8))
    shapes = [tuple(w.shape) for w in layer.trainable_weights]
    assert (3, 3, 4, 1) in shapes and (1, 1, 4, 8) in shapes


def test_gradients():
    check_gradients(lambda **kw: DepthwiseSeparableConv(3, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(DepthwiseSeparableConv(4), (2, 5, 5, 3), tmp_path)


@pytest.mark.parametrize("strides, use_bn", [(1, True), (2, True), (2, False)])
def test_forward_equals_stock_layers(strides, use_bn):
    """depthwise 3x3(strides) (-BN) -relu -> 1x1 conv (-BN) -relu; biases only without batch norm."""
    layer = DepthwiseSeparableConv(5, strides=strides, use_bn=use_bn)

    def reference(x, training):
        y = with_weights(keras.layers.DepthwiseConv2D(3, strides, padding="same", use_bias=not use_bn), layer.parts[0], x)
        if use_bn:
            y = with_weights(keras.layers.BatchNormalization(), layer.parts[1], y, training=training)
        return stock_conv_bn_act(layer.parts[-1], keras.layers.ReLU()(y), training, 5, 1, use_bn=use_bn)

    check_forward(layer, reference, (3, 7, 7, 3), batch_norm=use_bn)
