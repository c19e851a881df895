import keras
import numpy as np
import tensorflow as tf

from layers import ZeroPaddedAdd


def test_the_smaller_map_is_zero_padded_at_the_end_of_each_axis():
    a = np.arange(1, 5, dtype="float32").reshape(1, 2, 2, 1)
    b = np.full((1, 3, 3, 2), 10.0, "float32")
    out = ZeroPaddedAdd()([a, b]).numpy()
    assert out.shape == (1, 3, 3, 2)
    np.testing.assert_array_equal(out[0, ..., 0], [[11, 12, 10], [13, 14, 10], [10, 10, 10]])
    np.testing.assert_array_equal(out[0, ..., 1], np.full((3, 3), 10.0))  # a has no second channel
    # each input may be the larger one on a different axis
    c = np.ones((1, 3, 2, 4), "float32")
    assert tuple(ZeroPaddedAdd()([a, c]).shape) == (1, 3, 2, 4)
    assert ZeroPaddedAdd().compute_output_shape(((None, 2, 2, 1), (None, 3, 3, 2))) == (None, 3, 3, 2)


def test_equal_shapes_add():
    a = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    np.testing.assert_allclose(ZeroPaddedAdd()([a, 2 * a]), 3 * a, rtol=1e-6)


def test_sizes_known_only_when_called():
    layer = ZeroPaddedAdd()
    f = tf.function(lambda x, y: layer([x, y]), input_signature=[tf.TensorSpec((None, None, None, 1)),
                                                                   tf.TensorSpec((None, None, None, 2))])
    out = f(np.ones((1, 2, 2, 1), "float32"), np.ones((1, 3, 3, 2), "float32"))
    assert tuple(out.shape) == (1, 3, 3, 2) and float(out.numpy().sum()) == 18 + 4


def test_gradients_reach_both_inputs_where_they_are():
    a, b = tf.Variable(np.ones((1, 2, 2, 1), "float32")), tf.Variable(np.ones((1, 3, 3, 2), "float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(ZeroPaddedAdd()([a, b]) * np.arange(18, dtype="float32").reshape(1, 3, 3, 2))
    ga, gb = tape.gradient(loss, [a, b])
    np.testing.assert_array_equal(ga.numpy().ravel(), [0, 2, 6, 8])
    np.testing.assert_array_equal(gb.numpy().ravel(), np.arange(18))


def test_save_reload(tmp_path):
    a, b = keras.Input((3, 3, 2)), keras.Input((4, 4, 4))
    model = keras.Model([a, b], ZeroPaddedAdd(name="add")([a, b]))
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(2, 3, 3, 2)).astype("float32"), rng.normal(size=(2, 4, 4, 4)).astype("float32")]
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(reloaded.get_layer("add")) is ZeroPaddedAdd
    np.testing.assert_allclose(model(x), reloaded(x), rtol=1e-6)
