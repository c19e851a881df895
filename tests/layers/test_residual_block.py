import keras
import pytest

from layers import ResidualBlock
from tests.layers.layer_checks import check_forward, check_gradients, check_output_shape, check_save_reload, stock_conv_bn_act


def test_identity_shortcut_when_shapes_match():
    layer = ResidualBlock(4)
    check_output_shape(layer, (2, 6, 6, 4), (2, 6, 6, 4))
    assert layer.projection is None


def test_projection_when_stride_or_channels_change():
    layer = ResidualBlock(8, strides=2)
    check_output_shape(layer, (2, 6, 6, 4), (2, 3, 3, 8))
    assert layer.projection is not None


def test_bottleneck_expands_channels():
    layer = ResidualBlock(4, bottleneck=True)
    check_output_shape(layer, (1, 4, 4, 16), (1, 4, 4, 16))
    assert layer.projection is None
    assert len(layer.trainable_weights) == 3 * 3  # three conv+BN(gamma, beta) units


def test_gradients():
    check_gradients(lambda **kw: ResidualBlock(3, strides=2, **kw), (2, 4, 4, 2))


def test_save_reload(tmp_path):
    check_save_reload(ResidualBlock(8, strides=2, bottleneck=True, expansion=2), (2, 6, 6, 4), tmp_path)


@pytest.mark.parametrize("in_channels, filters, strides, bottleneck, projection", [
    (4, 4, 1, False, False),  # basic, identity shortcut
    (4, 6, 1, False, True),  # basic, projection for the channel count
    (4, 6, 2, False, True),  # basic, projection for the stride
    (8, 4, 1, True, False),  # bottleneck (expansion 2), identity shortcut
    (4, 3, 2, True, True),  # bottleneck, projection
])
def test_forward_equals_stock_layers(in_channels, filters, strides, bottleneck, projection):
    """relu(F(x) + shortcut(x)): F is conv3x3(strides)-BN-relu, conv3x3-BN (basic) or 1x1-BN-relu,
    3x3(strides)-BN-relu, 1x1-BN (bottleneck); the shortcut is x, or a strided 1x1 conv-BN."""
    layer = ResidualBlock(filters, strides=strides, bottleneck=bottleneck, expansion=2)
    out = filters * 2 if bottleneck else filters

    def reference(x, training):
        c = layer.convs
        if bottleneck:
            y = stock_conv_bn_act(c[0], x, training, filters, 1)
            y = stock_conv_bn_act(c[1], y, training, filters, 3, strides)
            y = stock_conv_bn_act(c[2], y, training, out, 1, activation=None)
        else:
            y = stock_conv_bn_act(c[0], x, training, filters, 3, strides)
            y = stock_conv_bn_act(c[1], y, training, filters, 3, activation=None)
        shortcut = stock_conv_bn_act(layer.projection, x, training, out, 1, strides, activation=None) if projection else x
        return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))

    check_forward(layer, reference, (3, 6, 6, in_channels))
