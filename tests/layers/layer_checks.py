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
