import numpy as np
import pytest

from layers import ConvBNAct
from tests.conftest import run_python
from tests.layers.layer_checks import check_forward, check_gradients, check_output_shape, check_save_reload, stock_conv_bn_act


def test_shapes_and_weights():
    layer = ConvBNAct(8, 3, strides=2)
    check_output_shape(layer, (2, 9, 9, 3), (2, 5, 5, 8))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(3, 3, 3, 8), (8,), (8,)]  # no conv bias with BN


def test_without_batch_norm_has_bias():
    layer = ConvBNAct(4, 1, use_bn=False, activation=None)
    check_output_shape(layer, (1, 3, 3, 2), (1, 3, 3, 4))
    assert len(layer.trainable_weights) == 2


def test_known_value():
    layer = ConvBNAct(1, 1, use_bn=False, activation="relu", kernel_initializer="ones")
    x = np.array([[[[1.0, -3.0]]]], "float32")
    assert float(layer(x)[0, 0, 0, 0]) == 0.0  # relu(1 - 3)


def test_gradients():
    check_gradients(lambda **kw: ConvBNAct(3, 3, activation="tanh", **kw), (2, 4, 4, 2))


def test_save_reload(tmp_path):
    check_save_reload(ConvBNAct(4, 3, weight_decay=1e-4), (2, 6, 6, 3), tmp_path)


@pytest.mark.parametrize("strides, activation, use_bn", [(1, "relu", True), (2, "relu6", True), (2, None, True),
                                                         (1, "tanh", False), (2, "relu", False)])
def test_forward_equals_stock_conv_bn_activation(strides, activation, use_bn):
    layer = ConvBNAct(5, 3, strides=strides, activation=activation, use_bn=use_bn)
    check_forward(layer, lambda x, training: stock_conv_bn_act(layer, x, training, 5, 3, strides, activation, use_bn),
                  (3, 7, 7, 4), batch_norm=use_bn)


@pytest.mark.parametrize("size, use_bn", [(7, True), (8, False), (1, True)])
def test_a_strided_pointwise_convolution_equals_the_stock_one(size, use_bn):
    """Run as a 1x1 convolution of every second pixel (oneDNN's strided 1x1 kernels crashed): the same numbers,
    shapes and weights as Conv2D(kernel 1, strides 2, padding 'same')."""
    layer = ConvBNAct(6, 1, strides=2, use_bn=use_bn)
    check_output_shape(layer, (3, size, size + 2, 4), (3, -(-size // 2), -(-(size + 2) // 2), 6))
    assert [tuple(w.shape) for w in layer.conv.weights][0] == (1, 1, 4, 6)
    check_forward(layer, lambda x, training: stock_conv_bn_act(layer, x, training, 6, 1, 2, "relu", use_bn),
                  (3, size, size + 2, 4), batch_norm=use_bn)


_TRAIN_NARROW_STRIDED_POINTWISE = """
import apps  # oneDNN on, as in every app
import keras, numpy as np
from layers import ConvBNAct
inputs = keras.Input((28, 28, 1))
x = ConvBNAct(4, 1, strides=2)(keras.layers.Conv2D(4, 3, padding="same")(inputs))
model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(np.random.rand(90, 28, 28, 1).astype("float32"), np.random.randint(0, 10, 90), batch_size=9, epochs=2, verbose=0)
print("trained")
"""


def test_training_a_narrow_strided_pointwise_convolution_at_an_odd_batch_does_not_crash():
    """With the stock strided 1x1 Conv2D this process died of heap corruption (oneDNN, TensorFlow 2.21)."""
    assert run_python("-c", _TRAIN_NARROW_STRIDED_POINTWISE, timeout=300).stdout.strip().endswith("trained")
