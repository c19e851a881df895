from layers import DenseBlock
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def test_each_layer_adds_growth_rate_channels():
    check_output_shape(DenseBlock(3, 4), (2, 5, 5, 6), (2, 5, 5, 18))
    check_output_shape(DenseBlock(2, 3, bottleneck=False), (1, 4, 4, 2), (1, 4, 4, 8))


def test_gradients():
    check_gradients(lambda **kw: DenseBlock(2, 2, **kw), (2, 3, 3, 2))


def test_save_reload(tmp_path):
    check_save_reload(DenseBlock(2, 4), (2, 5, 5, 3), tmp_path)
