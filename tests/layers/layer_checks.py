"""Checks every custom layer gets: shapes, trainable weights, save/reload, numerical gradients."""
import keras
import numpy as np
import tensorflow as tf


def check_output_shape(layer, input_shape, expected):
    y = layer(tf.zeros(input_shape))
    assert tuple(y.shape) == tuple(expected)
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(expected)


def check_save_reload(layer, input_shape, tmp_path):
    """A model holding the layer saves to .keras and reloads with safe_mode to the same outputs."""
    inputs = keras.Input(input_shape[1:])
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    path = tmp_path / "layer.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(model(x, training=False), reloaded(x, training=False), rtol=1e-5, atol=1e-5)
    assert type(reloaded.layers[1]) is type(layer)
    assert reloaded.layers[1].get_config() == layer.get_config()


def check_gradients(make_layer, input_shape, tolerance=1e-4):
    """Analytic vs finite-difference Jacobian in float64 (BatchNorm in training mode, batch stats)."""
    layer = make_layer(dtype="float64")
    x = tf.constant(np.random.default_rng(1).normal(size=input_shape), tf.float64)
    layer(x)  # build
    theoretical, numerical = tf.test.compute_gradient(lambda t: layer(t, training=True), [x], delta=1e-6)
    error = max(np.abs(t - n).max() for t, n in zip(theoretical, numerical))
    assert error < tolerance, f"gradient error {error}"
    return layer


def randomize_weights(layer, seed=0):
    """Give every weight of a built layer a random value, BatchNorm moving statistics included, so a
    forward check sees each one (fresh, the moving mean is 0 and variance 1: BatchNorm in inference
    mode would be nearly the identity, and a block that skipped it would pass)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        name = w.path.split("/")[-1]
        if name == "moving_variance":
            value = rng.uniform(0.5, 2.0, w.shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.5, w.shape)
        else:
            value = rng.normal(0.0, 0.5, w.shape)
        w.assign(value.astype(w.dtype))


def with_weights(stock_layer, source, x, **call_kwargs):
    """Call a stock Keras layer on `x` with the weights of the block's sub-layer `source`."""
    stock_layer.build(tuple(x.shape))
    stock_layer.set_weights(source.get_weights())
    return stock_layer(x, **call_kwargs)


def stock_activation(name):
    return {None: lambda t: t, "relu": keras.layers.ReLU(), "relu6": keras.layers.ReLU(max_value=6.0),
            "tanh": keras.layers.Activation("tanh")}[name]


def stock_conv_bn_act(unit, x, training, filters, kernel_size, strides=1, activation="relu", use_bn=True):
    """What a ConvBNAct is, in stock layers: Conv2D (padding 'same', a bias only without batch norm)
    -> BatchNormalization -> activation, on the weights of `unit` (a ConvBNAct)."""
    conv = keras.layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=not use_bn)
    y = with_weights(conv, unit.conv, x)
    if use_bn:
        y = with_weights(keras.layers.BatchNormalization(), unit.bn, y, training=training)
    return stock_activation(activation)(y)


def check_forward(layer, reference, input_shape, batch_norm=True, input_scale=1.0, seed=0):
    """The layer's output equals `reference(x, training)` (the same computation written with stock
    Keras layers on the layer's weights) in inference mode and, with batch norm, in training mode
    (batch statistics), where the two modes must also differ. `input_scale` widens the inputs (to
    reach ReLU6's cap, say)."""
    x = tf.constant(np.random.default_rng(seed).normal(size=input_shape) * input_scale, tf.float32)
    layer(x)  # build
    randomize_weights(layer, seed + 1)
    outputs = {}
    for training in (False, True) if batch_norm else (False,):
        expected = reference(x, training)  # before the layer's own call: training mode moves the statistics
        outputs[training] = layer(x, training=training)
        np.testing.assert_allclose(outputs[training], expected, rtol=1e-5, atol=1e-5 * input_scale, err_msg=f"training={training}")
    if batch_norm:
        assert not np.allclose(outputs[False], outputs[True], atol=1e-3), "inference and training mode agree: BN unchecked"
    return outputs
