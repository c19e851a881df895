import keras

from layers import FireModule
from tests.layers.layer_checks import check_forward, check_gradients, check_output_shape, check_save_reload, with_weights


def test_shapes_and_weights():
    layer = FireModule(4, 8)
    check_output_shape(layer, (2, 6, 6, 3), (2, 6, 6, 16))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(1, 1, 3, 4), (4,), (1, 1, 4, 8), (8,), (3, 3, 4, 8), (8,)]


def test_gradients():
    check_gradients(lambda **kw: FireModule(2, 2, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(FireModule(2, 3), (2, 5, 5, 3), tmp_path)


def test_forward_equals_stock_layers():
    """concat[relu(1x1 conv(s)), relu(3x3 conv(s), padding same)] of s = relu(1x1 squeeze conv(x)), all with biases."""
    layer = FireModule(3, 4)

    def reference(x, training):
        relu = keras.layers.ReLU()
        s = relu(with_weights(keras.layers.Conv2D(3, 1), layer.squeeze1x1, x))
        e1 = relu(with_weights(keras.layers.Conv2D(4, 1), layer.expand1x1, s))
        e3 = relu(with_weights(keras.layers.Conv2D(4, 3, padding="same"), layer.expand3x3, s))
        return keras.layers.Concatenate()([e1, e3])

    check_forward(layer, reference, (3, 6, 6, 2), batch_norm=False)
