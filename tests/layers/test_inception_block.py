from layers import InceptionBlock
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def test_shapes_and_weights():
    layer = InceptionBlock(2, 3, 4, 1, 2, 3)
    check_output_shape(layer, (2, 5, 5, 3), (2, 5, 5, 11))
    assert len(layer.trainable_weights) == 6 * 3  # six convs, each with BN gamma and beta


def test_gradients():
    check_gradients(lambda **kw: InceptionBlock(1, 1, 2, 1, 1, 1, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(InceptionBlock(2, 2, 2, 1, 1, 2), (2, 5, 5, 3), tmp_path)
