"""Every backbone declares its pyramid levels and feature layers where it is defined; one registry."""
import math

import keras
import numpy as np
import pytest

from backbones import (BackboneError, BackboneOptions, backbone_names, build_backbone, feature_extractor,
                       feature_pyramid, get_backbone, preprocessing_layer, pyramid_levels)

SIZE = 64


@pytest.mark.parametrize("name", backbone_names())
def test_pyramid_levels_have_their_declared_strides(name):
    backbone = build_backbone(name, (SIZE, SIZE, 3), BackboneOptions(width=8, depth=1))
    assert backbone.name == "backbone" and backbone.pyramid_outputs
    for level, tensor in backbone.pyramid_outputs.items():
        grid = math.ceil(SIZE / 2 ** int(level[1:]))
        assert tensor.shape[1] in (grid, grid - 1), (level, tensor.shape)  # valid padding (squeezenet): a pixel short
    outputs = keras.Model(backbone.input, backbone.pyramid_outputs)(np.zeros((1, SIZE, SIZE, 3), np.float32))
    assert set(outputs) == set(backbone.pyramid_outputs)
    assert backbone.feature_layers and all(backbone.get_layer(n) for n in backbone.feature_layers)


@pytest.mark.parametrize("name", backbone_names(pretrained=False))
def test_a_stride_4_stem_moves_the_zoo_levels_up_by_two(name):
    plain = build_backbone(name, (SIZE, SIZE, 3), BackboneOptions(width=8, depth=1))
    stem = build_backbone(name, (SIZE, SIZE, 3), BackboneOptions(width=8, depth=1, stem_stride=4))
    shifted = {f"P{int(k[1:]) + 2}" for k in plain.pyramid_outputs}
    assert shifted <= set(stem.pyramid_outputs) and "P1" in stem.pyramid_outputs


def test_one_registry_orders_zoo_then_pretrained():
    names = backbone_names()
    assert names[:7] == ["lenet5", "vgg", "nin", "inception", "resnet", "densenet", "mobilenetv2"]
    assert set(backbone_names(pretrained=True)) == set(names[7:]) and "squeezenet" in names
    assert get_backbone("VGG16").preprocessing == "caffe" and get_backbone("resnet").preprocessing == "standardize"


def test_vgg_style_layers_for_feature_extraction():
    vgg = build_backbone("VGG19", (48, 48, 3))
    style = [f"block{i}_conv1" for i in range(1, 6)]
    features = feature_extractor(vgg, style + ["block5_conv2"])
    out = features(np.zeros((1, 48, 48, 3), np.float32))
    assert list(out) == style + ["block5_conv2"]
    assert [out[n].shape[1] for n in style] == [48, 24, 12, 6, 3]
    np.testing.assert_allclose(out["block1_conv1"], vgg.get_layer("block1_conv1")(np.zeros((1, 48, 48, 3))), atol=1e-6)


def test_squeezenet_fire_modules_for_feature_extraction():
    squeeze = build_backbone("squeezenet", (64, 64, 3), weights="imagenet")
    out = feature_extractor(squeeze, ["fire2", "fire9"])(np.ones((1, 64, 64, 3), np.float32))
    assert out["fire2"].shape[-1] == 128 and out["fire9"].shape[-1] == 512 and float(np.abs(out["fire9"]).sum()) > 0


def test_unknown_layer_and_unknown_backbone_are_clear_errors():
    vgg = build_backbone("VGG16", (32, 32, 3))
    with pytest.raises(BackboneError, match=r"no layer 'block9_conv1'; feature layers: block1_conv1, block1_conv2"):
        feature_extractor(vgg, ["block9_conv1"])
    with pytest.raises(BackboneError, match=r"unknown backbone 'ResNet999'; choose one of lenet5, vgg"):
        build_backbone("ResNet999", (32, 32, 3))
    with pytest.raises(BackboneError, match=r"squeezenet cannot take images of shape \(28, 28, 3\).*raise --data.image_size"):
        build_backbone("squeezenet", (28, 28, 3))
    with pytest.raises(BackboneError, match="resnet is a zoo network trained from scratch"):
        build_backbone("resnet", (32, 32, 3), weights="imagenet")


def test_preprocessing_is_declared_per_backbone():
    pixels = np.full((1, 2, 2, 3), 255.0, np.float32)
    assert float(preprocessing_layer("MobileNetV2")(pixels)[0, 0, 0, 0]) == pytest.approx(1.0)
    caffe = preprocessing_layer("squeezenet")(pixels)[0, 0, 0]
    np.testing.assert_allclose(caffe, [255 - 103.939, 255 - 116.779, 255 - 123.68], rtol=1e-6)
    standardized = preprocessing_layer("resnet", ([100.0, 100.0, 100.0], [25.0, 25.0, 25.0]))(pixels)
    np.testing.assert_allclose(standardized[0, 0, 0], [31.0] * 3, rtol=1e-6)


def test_feature_pyramid_over_declared_levels():
    backbone = build_backbone("resnet", (64, 64, 3), BackboneOptions(width=8, depth=1, stem_stride=4))
    levels = pyramid_levels(backbone, 3, 5)
    assert sorted(levels) == [3, 4]
    pyramid = feature_pyramid(levels, 16, 64, max_level=5)
    assert {lv: tuple(t.shape[1:]) for lv, t in pyramid.items()} == {3: (8, 8, 16), 4: (4, 4, 16), 5: (2, 2, 16)}


def test_a_suite_backbone_feeds_keras_hub_deeplab():
    import keras_hub

    backbone = build_backbone("mobilenetv2", (64, 64, 3), BackboneOptions(width=8, depth=1, stem_stride=4))
    deeplab = keras_hub.models.DeepLabV3Backbone(image_encoder=backbone, low_level_feature_key="P2",
                                                 spatial_pyramid_pooling_key="P4", upsampling_size=4,
                                                 dilation_rates=[1, 2])
    assert deeplab(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 64, 64, 256)
