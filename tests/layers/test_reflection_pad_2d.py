import keras
import numpy as np

from layers import ReflectionPad2D


def test_borders_are_mirrored_without_repeating_the_edge():
    x = np.arange(12, dtype="float32").reshape(1, 3, 4, 1)
    out = ReflectionPad2D(2)(x).numpy()
    np.testing.assert_array_equal(out, np.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="reflect"))
    assert out[0, 0, 2, 0] == x[0, 2, 0, 0]  # two rows up, two columns left: mirrored about the edge pixel


def test_shapes_and_config():
    layer = ReflectionPad2D(4)
    assert layer.compute_output_shape((None, None, 10, 3)) == (None, None, 18, 3)
    model = keras.Sequential([keras.Input((None, None, 2)), layer])
    again = keras.Sequential.from_config(model.get_config())
    assert again.layers[0].padding == 4
