from layers import DepthwiseSeparableConv
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def test_shapes_and_weights():
    layer = DepthwiseSeparableConv(8, strides=2)
    check_output_shape(layer, (2, 8, 8, 4), (2, 4, 4, 8))
    shapes = [tuple(w.shape) for w in layer.trainable_weights]
    assert (3, 3, 4, 1) in shapes and (1, 1, 4, 8) in shapes


def test_gradients():
    check_gradients(lambda **kw: DepthwiseSeparableConv(3, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(DepthwiseSeparableConv(4), (2, 5, 5, 3), tmp_path)
