from layers import ResidualBlock
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def test_identity_shortcut_when_shapes_match():
    layer = ResidualBlock(4)
    check_output_shape(layer, (2, 6, 6, 4), (2, 6, 6, 4))
    assert layer.projection is None


def test_projection_when_stride_or_channels_change():
    layer = ResidualBlock(8, strides=2)
    check_output_shape(layer, (2, 6, 6, 4), (2, 3, 3, 8))
    assert layer.projection is not None


def test_bottleneck_expands_channels():
    layer = ResidualBlock(4, bottleneck=True)
    check_output_shape(layer, (1, 4, 4, 16), (1, 4, 4, 16))
    assert layer.projection is None
    assert len(layer.trainable_weights) == 3 * 3  # three conv+BN(gamma, beta) units


def test_gradients():
    check_gradients(lambda **kw: ResidualBlock(3, strides=2, **kw), (2, 4, 4, 2))


def test_save_reload(tmp_path):
    check_save_reload(ResidualBlock(8, strides=2, bottleneck=True, expansion=2), (2, 6, 6, 4), tmp_path)
