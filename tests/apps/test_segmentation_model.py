"""Segmentation networks: logits at the input resolution for two sizes, strides, save/reload, the pretrained
encoders (embedded SqueezeNet, VGG16 from a weights file), FCN's bilinear start, config checks, and a tiny
U-Net that overfits one image."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.semantic_segmentation.model import (ModelConfig, PyramidEncoder, build_segmenter, encoder_of,
                                              model_stride)
from backbones import build_backbone, set_trainable_top
from layers.initializers import BilinearUpsampling
from layers.losses.segmentation import SegmentationCrossEntropy
from tests.conftest import compile_built

TINY = dict(width=4, depth=3)
ARCHS = {
    "unet": ModelConfig(**TINY),
    "unet_squeezenet": ModelConfig(backbone="squeezenet", weights="imagenet", **TINY),
    "fcn_resnet": ModelConfig(arch="fcn", backbone="resnet", width=4),
    "deeplab_resnet": ModelConfig(arch="deeplabv3plus", backbone="resnet", width=4),
    "deeplab_squeezenet": ModelConfig(arch="deeplabv3plus", backbone="squeezenet", weights="imagenet", width=4),
}
STRIDES = {"unet": 8, "unet_squeezenet": 8, "fcn_resnet": 16, "deeplab_resnet": 16, "deeplab_squeezenet": 16}


def pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


@pytest.mark.parametrize("name", list(ARCHS))
def test_logits_at_input_resolution_for_two_sizes_and_reload(name, tmp_path):
    cfg = ARCHS[name]
    stride = model_stride(cfg)
    assert stride == STRIDES[name]
    model = build_segmenter(cfg, num_classes=3)
    assert model.input_shape == (None, None, None, 3) and model.output_shape == (None, None, None, 3)
    for h, w in [(2 * stride, 3 * stride), (4 * stride, 4 * stride)]:
        y = model(pixels((2, h, w, 3)))
        assert tuple(y.shape) == (2, h, w, 3) and y.dtype == "float32"
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    x = pixels((1, 2 * stride, 2 * stride, 3), seed=1)
    np.testing.assert_allclose(reloaded(x), model(x), rtol=1e-4, atol=1e-4)
    if cfg.backbone != "none":  # the encoder is found again (DeepLabV3+: keras-hub's image encoder)
        assert isinstance(encoder_of(reloaded), PyramidEncoder)
    any_size = tf.function(lambda x: reloaded(x, training=False), input_signature=[tf.TensorSpec([1, None, None, 3])])
    np.testing.assert_allclose(any_size(x), reloaded(x, training=False), rtol=1e-4, atol=1e-4)  # as exports run


def test_grey_input():
    for cfg in (ModelConfig(**TINY), ModelConfig(backbone="squeezenet", **TINY)):
        model = build_segmenter(cfg, num_classes=2, channels=1)
        assert tuple(model(pixels((1, 16, 24, 1))).shape) == (1, 16, 24, 2)


def test_strides_follow_the_levels_used():
    assert model_stride(ModelConfig(depth=4)) == 16
    assert model_stride(ModelConfig(depth=2)) == 4
    assert model_stride(ModelConfig(backbone="squeezenet", depth=6)) == 16  # its deepest level is P4
    assert model_stride(ModelConfig(backbone="VGG16", depth=5)) == 32
    assert model_stride(ModelConfig(arch="fcn", backbone="VGG16")) == 32  # FCN-8s: P3, P4, P5
    assert model_stride(ModelConfig(arch="deeplabv3plus", backbone="VGG16")) == 16  # ASPP on P4


def test_squeezenet_levels_are_padded_to_exact_strides():
    """SqueezeNet's valid convolutions give size / stride - 1; the encoder pads bottom and right by one."""
    model = build_segmenter(ARCHS["unet_squeezenet"], num_classes=2)
    encoder = encoder_of(model)
    out = encoder(keras.ops.zeros((1, 64, 96, 3)))
    assert {k: tuple(v.shape[1:3]) for k, v in out.items()} == {"P1": (32, 48), "P2": (16, 24), "P3": (8, 12)}
    assert set(encoder.pyramid_outputs) == {"P1", "P2", "P3"}


def test_embedded_squeezenet_weights_are_loaded():
    reference = build_backbone("squeezenet", (None, None, 3), weights="imagenet")
    for name in ("unet_squeezenet", "deeplab_squeezenet"):
        encoder = encoder_of(build_segmenter(ARCHS[name], num_classes=2))
        np.testing.assert_array_equal(encoder.get_layer("conv1").kernel.numpy(),
                                      reference.get_layer("conv1").kernel.numpy())
        np.testing.assert_array_equal(encoder.get_layer("fire3").expand3x3.kernel.numpy(),
                                      reference.get_layer("fire3").expand3x3.kernel.numpy())


def test_vgg16_encoder_from_a_weights_file(tmp_path):
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    vgg.save_weights(path)
    cfg = ModelConfig(backbone="VGG16", weights=str(path), width=4, depth=2)
    model = build_segmenter(cfg, num_classes=2)
    np.testing.assert_array_equal(encoder_of(model).get_layer("block2_conv1").kernel.numpy(),
                                  vgg.get_layer("block2_conv1").kernel.numpy())
    assert tuple(model(pixels((1, 32, 32, 3))).shape) == (1, 32, 32, 2)


def test_fine_tuning_freezes_the_encoder():
    """set_trainable_top (the shared fine-tuning switch) finds the encoder of U-Net and FCN by name;
    for DeepLabV3+ the encoder is keras-hub's image encoder and its layers freeze the same way."""
    for name in ("unet_squeezenet", "fcn_resnet"):
        model = build_segmenter(ARCHS[name], num_classes=2)
        before = len(model.trainable_weights)
        set_trainable_top(model, 0)
        assert 0 < len(model.trainable_weights) < before
        assert not encoder_of(model).trainable_weights
    model = build_segmenter(ARCHS["deeplab_squeezenet"], num_classes=2)
    before = len(model.trainable_weights)
    for layer in encoder_of(model).layers:
        layer.trainable = False
    assert len(model.trainable_weights) == before - 2 * 25  # SqueezeNet's 25 convolutions, kernel and bias


def test_fcn_starts_as_bilinear_upsampling():
    model = build_segmenter(ARCHS["fcn_resnet"], num_classes=3)
    for name in ("up_p4", "up_p3", "upsample"):
        kernel = model.get_layer(name).kernel
        np.testing.assert_array_equal(kernel.numpy(), BilinearUpsampling()(kernel.shape).numpy())
    assert not model.get_layer("upsample").trainable_weights  # fixed, as in FCN
    assert model.get_layer("up_p4").trainable_weights
    assert not np.asarray(model(pixels((1, 32, 32, 3)))).any()  # zero-initialised class layers


def test_config_checks():
    for cfg, match in [(ModelConfig(arch="fcn"), "must name a backbone"),
                       (ModelConfig(weights="imagenet"), "needs a pretrained"),
                       (ModelConfig(backbone="resnet", weights="imagenet"), "needs a pretrained"),
                       (ModelConfig(aspp_rates="6,x"), "aspp_rates")]:
        with pytest.raises(ValueError, match=match):
            cfg.check("model.")
    ModelConfig(arch="deeplabv3plus", backbone="mobilenetv2").check("model.")
    assert dataclasses.asdict(ModelConfig())["arch"] == "unet"


def test_tiny_unet_overfits_one_image():
    """A disc on a noisy background: the loss falls tenfold and nearly every pixel is right."""
    keras.utils.set_random_seed(0)
    yy, xx = np.mgrid[:32, :32]
    mask = ((yy - 14) ** 2 + (xx - 18) ** 2 < 81).astype("int32")
    image = (pixels((32, 32, 3)) * 0.3 + 150 * mask[..., None])[None]
    model = build_segmenter(ModelConfig(width=8, depth=2), num_classes=2)
    compile_built(model, keras.optimizers.Adam(3e-3), SegmentationCrossEntropy())
    losses = [float(model.train_on_batch(image, mask[None])) for _ in range(60)]
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    predicted = np.argmax(model.predict_on_batch(image)[0], -1)
    assert (predicted == mask).mean() > 0.98
