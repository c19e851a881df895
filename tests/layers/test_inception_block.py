import keras

from layers import InceptionBlock
from tests.layers.layer_checks import check_forward, check_gradients, check_output_shape, check_save_reload, stock_conv_bn_act


def test_shapes_and_weights():
    layer = InceptionBlock(2, 3, 4, 1, 2, 3)
    check_output_shape(layer, (2, 5, 5, 3), (2, 5, 5, 11))
    assert len(layer.trainable_weights) == 6 * 3  # six convs, each with BN gamma and beta


def test_gradients():
    check_gradients(lambda **kw: InceptionBlock(1, 1, 2, 1, 1, 1, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(InceptionBlock(2, 2, 2, 1, 1, 2), (2, 5, 5, 3), tmp_path)


def test_forward_equals_stock_layers():
    """concat[1x1; 1x1 -> 3x3; 1x1 -> 5x5; maxpool 3x3 stride 1 -> 1x1], each conv with BN and relu."""
    layer = InceptionBlock(2, 3, 4, 1, 5, 3)

    def reference(x, training):
        b = layer.branches
        p1 = stock_conv_bn_act(b[0][0], x, training, 2, 1)
        p3 = stock_conv_bn_act(b[1][1], stock_conv_bn_act(b[1][0], x, training, 3, 1), training, 4, 3)
        p5 = stock_conv_bn_act(b[2][1], stock_conv_bn_act(b[2][0], x, training, 1, 1), training, 5, 5)
        pool = keras.layers.MaxPooling2D(3, 1, padding="same")(x)
        pp = stock_conv_bn_act(b[3][1], pool, training, 3, 1)
        return keras.layers.Concatenate()([p1, p3, p5, pp])

    check_forward(layer, reference, (3, 6, 6, 3))
