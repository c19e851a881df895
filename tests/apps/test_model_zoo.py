"""The model zoo, pretrained backbones, their weights files, and two-phase fine-tuning."""
import h5py
import keras
import numpy as np
import pytest

from apps.image_classification.config import ModelConfig
from apps.image_classification.model import build_classifier
from backbones import BackboneError, backbone_names, set_trainable_top
from backbones.squeezenet import WEIGHTS as SQUEEZENET_WEIGHTS
from tests.conftest import compile_built, last_line, run_main, run_ok, shared_data

SHARED_VGG16 = "weights/vgg16_hed_notop.weights.h5"  # under ../shared/data


@pytest.mark.parametrize("arch", backbone_names(pretrained=False))
def test_every_zoo_model_builds_trains_and_reloads(arch, tmp_path):
    keras.utils.set_random_seed(0)  # unseeded, DenseNet's loss rose over 8 steps in about one run of many
    model = build_classifier(ModelConfig(arch=arch, width=8, depth=1, dropout=0.1), (28, 28, 1), 10, ([120.0], [900.0]))
    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    y = keras.utils.to_categorical([0, 1, 2, 3], 10)
    compile_built(model, "adam", "categorical_crossentropy")
    losses = model.fit(x, y, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]  # it learns
    probabilities = model(x, training=False).numpy()  # eager: predict() would trace a function per model
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(probabilities, reloaded(x, training=False).numpy(), rtol=1e-4, atol=1e-6)


def test_squeezenet_loads_the_embedded_imagenet_weights():
    model = build_classifier(ModelConfig(arch="squeezenet", weights="imagenet"), (64, 64, 3), 5, None)
    fire9 = model.get_layer("backbone").get_layer("fire9").expand3x3
    kernel = [a for a in _datasets(SQUEEZENET_WEIGHTS, "fire9/expand3x3") if a.ndim == 4][0]
    np.testing.assert_array_equal(fire9.kernel.numpy(), kernel)


def _datasets(path, group):
    out = []
    with h5py.File(path) as f:
        f[group].visititems(lambda _, obj: out.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_grey_input_feeds_an_rgb_backbone():
    model = build_classifier(ModelConfig(arch="squeezenet", weights=None), (32, 32, 1), 3, None)
    assert model.get_layer("grey_to_rgb").output.shape[-1] == 3


def test_fine_tuning_freezes_then_unfreezes_the_top_but_not_batchnorm():
    model = build_classifier(ModelConfig(arch="MobileNetV2", weights=None), (32, 32, 3), 4, None)
    backbone = model.get_layer("backbone")
    set_trainable_top(model, 0)
    assert not backbone.trainable_weights and model.trainable_weights  # only the head trains
    set_trainable_top(model, 10)
    trainable = [layer for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable and all(layer in backbone.layers[-10:] for layer in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)


def test_vgg16_from_a_local_weights_file_and_a_file_for_another_architecture():
    vgg16 = shared_data(SHARED_VGG16)  # a skip without ../shared; a failure in CI
    model = build_classifier(ModelConfig(arch="VGG16", weights=str(vgg16)), (32, 32, 3), 10, None)
    kernel = model.get_layer("backbone").get_layer("block1_conv1").kernel.numpy()
    assert np.abs(kernel).sum() > 0
    fresh = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    fresh.load_weights(vgg16)
    np.testing.assert_array_equal(kernel, fresh.get_layer("block1_conv1").kernel.numpy())
    with pytest.raises(BackboneError, match="does not fit VGG19: it holds 26 arrays, VGG19 has 32"):
        build_classifier(ModelConfig(arch="VGG19", weights=str(vgg16)), (32, 32, 3), 10, None)
    with pytest.raises(BackboneError, match="does not fit ResNet50"):
        build_classifier(ModelConfig(arch="ResNet50", weights=str(vgg16)), (32, 32, 3), 10, None)
    with pytest.raises(BackboneError, match="does not fit squeezenet: it has no group .conv1."):
        build_classifier(ModelConfig(arch="squeezenet", weights=str(vgg16)), (32, 32, 3), 10, None)


def test_imagenet_download_offline_is_a_clear_error(monkeypatch):
    import backbones.weights

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(backbones.weights.socket, "create_connection", offline)
    with pytest.raises(BackboneError, match="ImageNet weights for VGG16 need a download.*--model.weights"):
        build_classifier(ModelConfig(arch="VGG16", weights="imagenet"), (32, 32, 3), 10, None)


def test_two_phase_fine_tuning_on_a_folder(tmp_path, class_folder):
    proc = run_ok("image_classification", "train", "--run_dir", tmp_path, "--data.source", "folder", "--data.path",
                  class_folder, "--data.image_size", "48", "--model.arch", "squeezenet", "--model.weights", "imagenet",
                   "--model.freeze_epochs", "1", "--model.unfreeze_layers", "3", "--epochs", "2", "--batch_size", "8",
                   "--verbose", "line")
    head, tune = [line for line in proc.stdout.splitlines() if line.startswith("phase")]
    assert head.startswith("phase 'head': epochs 1..1, 2 trainable")  # the new Dense head only
    assert tune.startswith("phase 'finetune': epochs 2..2, 20 trainable")  # + fire7..fire9, 6 tensors each
    model = keras.saving.load_model(tmp_path / "model.keras")
    squeeze = model.get_layer("backbone").get_layer("fire2").squeeze1x1.kernel.numpy()
    np.testing.assert_array_equal(squeeze, [a for a in _datasets(SQUEEZENET_WEIGHTS, "fire2/squeeze1x1") if a.ndim == 4][0])
    proc = run_ok("image_classification", "predict", class_folder / "dog", "--run_dir", tmp_path)
    assert len(proc.stdout.strip().splitlines()) == 12


def test_unknown_backbone_is_a_one_line_error(tmp_path):
    proc = run_main("image_classification", "train", "--model.arch", "ResNet999", "--run_dir", tmp_path)
    assert proc.returncode == 2 and "'model.arch' must be one of" in last_line(proc.stderr)


@pytest.mark.parametrize("weights", [None, "imagenet"])
def test_batchnorm_learns_from_scratch_and_keeps_pretrained_statistics(weights):
    model = build_classifier(ModelConfig(arch="efficientnet_lite0", weights=weights), (32, 32, 3), 3, None)
    bn = model.get_layer("backbone").get_layer("stem_bn")
    before = bn.moving_mean.numpy().copy()
    compile_built(model, "sgd", "categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(x, keras.utils.to_categorical([0, 1, 2, 0], 3), epochs=1, verbose=0)
    moved = not np.allclose(bn.moving_mean.numpy(), before)
    assert moved == (weights is None)
