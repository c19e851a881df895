from layers import FireModule
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def test_shapes_and_weights():
    layer = FireModule(4, 8)
    check_output_shape(layer, (2, 6, 6, 3), (2, 6, 6, 16))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(1, 1, 3, 4), (4,), (1, 1, 4, 8), (8,), (3, 3, 4, 8), (8,)]


def test_gradients():
    check_gradients(lambda **kw: FireModule(2, 2, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(FireModule(2, 3), (2, 5, 5, 3), tmp_path)
