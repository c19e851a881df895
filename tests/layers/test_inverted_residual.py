import numpy as np

from layers import InvertedResidual
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def test_residual_only_when_shapes_match():
    same = InvertedResidual(4)
    check_output_shape(same, (2, 6, 6, 4), (2, 6, 6, 4))
    assert same.use_residual
    down = InvertedResidual(8, strides=2)
    check_output_shape(down, (2, 6, 6, 4), (2, 3, 3, 8))
    assert not down.use_residual


def test_expansion_width():
    layer = InvertedResidual(4, expansion=6)
    layer(np.zeros((1, 4, 4, 4), "float32"))
    assert tuple(layer.expand.conv.kernel.shape) == (1, 1, 4, 24)


def test_gradients():
    check_gradients(lambda **kw: InvertedResidual(2, expansion=2, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(InvertedResidual(3, expansion=2), (2, 5, 5, 3), tmp_path)
