from layers import NiNBlock
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def test_shapes_and_weights():
    layer = NiNBlock(6, 5, 2)
    check_output_shape(layer, (2, 8, 8, 3), (2, 4, 4, 6))
    assert [tuple(w.shape) for w in layer.trainable_weights][::3] == [(5, 5, 3, 6), (1, 1, 6, 6), (1, 1, 6, 6)]


def test_gradients():
    check_gradients(lambda **kw: NiNBlock(2, 3, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(NiNBlock(4, 3), (2, 5, 5, 3), tmp_path)
