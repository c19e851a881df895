"""The suite's CNN zoo, scaled for CPU, and pretrained backbones: shared by every vision app.

Zoo bodies (`scratch_body`) take normalised pixels and return a feature map; `build_backbone`
returns a headless pretrained network as a sub-model named "backbone" with its own weights.
"""
import socket
from pathlib import Path

import h5py
import keras
import numpy as np

from apps.core.errors import UserError
from layers import (ConvBNAct, DenseBlock, DepthwiseSeparableConv, FireModule, InceptionBlock, InvertedResidual,
                    NiNBlock, ResidualBlock)

SCRATCH = ["lenet5", "vgg", "nin", "inception", "resnet", "densenet", "mobilenetv2"]
KERAS_APPLICATIONS = {  # name -> preprocess_input convention of that family
    "VGG16": "caffe", "VGG19": "caffe", "ResNet50": "caffe", "MobileNetV2": "tf", "EfficientNetB0": "none"}
PRETRAINED = ["squeezenet", *KERAS_APPLICATIONS]
ARCHS = SCRATCH + PRETRAINED
SQUEEZENET_WEIGHTS = Path(__file__).resolve().parents[2] / "data" / "embedded" / "squeezenet_v1.1_imagenet_notop.h5"


def backbone_preprocessing(arch):
    return "caffe" if arch == "squeezenet" else KERAS_APPLICATIONS[arch]


def build_backbone(arch, input_shape, weights):
    """A headless pretrained backbone as a named sub-model (`model.get_layer('backbone')`)."""
    if arch == "squeezenet":
        backbone = squeezenet(input_shape)
        if weights:
            load_squeezenet_weights(backbone, SQUEEZENET_WEIGHTS if weights == "imagenet" else weights)
        return backbone
    if arch not in KERAS_APPLICATIONS:
        raise UserError(f"unknown backbone {arch!r}; choose one of {', '.join(PRETRAINED)}")
    if weights == "imagenet":
        _require_network(arch)
    try:
        base = getattr(keras.applications, arch)(
            include_top=False, weights="imagenet" if weights == "imagenet" else None, input_shape=input_shape)
    except ValueError as e:
        raise UserError(f"{arch} cannot take input shape {input_shape}: {e}") from None
    if weights and weights != "imagenet":
        _load_weights_file(base, weights, arch)
    return keras.Model(base.inputs, base.outputs[0], name="backbone")


def _require_network(arch, host="storage.googleapis.com"):
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise UserError(
            f"ImageNet weights for {arch} need a download, and {host} cannot be reached; pass a local weights "
            f"file with --model.weights /path/to/{arch.lower()}_notop.weights.h5") from None


def _load_weights_file(model, path, arch):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    _check_weight_shapes(model, path, arch)
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"weights file {path} does not fit {arch}: {first}") from None


def _check_weight_shapes(model, path, arch):
    """Keras only warns, and keeps fresh weights, for parts of a file that do not match: compare
    the file's array shapes with the model's first, so a file for another network is an error."""
    try:
        with h5py.File(path, "r") as f:
            in_file = sorted(a.shape for a in _h5_arrays(f))
    except OSError:
        raise UserError(f"weights file {path} is not an HDF5 file") from None
    in_model = sorted(tuple(w.shape) for w in model.weights)
    if in_file != in_model:
        missing = sorted(set(in_model) - set(in_file)) or sorted(set(in_file) - set(in_model))
        raise UserError(f"weights file {path} does not fit {arch}: it holds {len(in_file)} arrays, {arch} has "
                        f"{len(in_model)}" + (f" (e.g. shape {missing[0]} is not in both)" if missing else ""))


def load_squeezenet_weights(backbone, path):
    """Copy the Keras-2 h5 SqueezeNet 1.1 weights (groups conv1, fireN/squeeze1x1, ...) into `backbone`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise UserError(f"weights file {path} is not an HDF5 file") from None
    with f:
        for layer in backbone.layers:
            convs = {"conv1": layer} if layer.name == "conv1" else (
                {f"{layer.name}/{c.name}": c for c in (layer.squeeze1x1, layer.expand1x1, layer.expand3x3)}
                if isinstance(layer, FireModule) else {})
            for group_name, conv in convs.items():
                if group_name not in f:
                    raise UserError(f"weights file {path} does not fit squeezenet: it has no group {group_name!r}")
                arrays = _h5_arrays(f[group_name])
                kernel = next((a for a in arrays if a.ndim == 4), None)
                bias = next((a for a in arrays if a.ndim == 1), None)
                expected = tuple(conv.kernel.shape)
                if kernel is None or bias is None or kernel.shape != expected:
                    got = None if kernel is None else kernel.shape
                    raise UserError(f"weights file {path} does not fit squeezenet: {group_name} kernel is {got}, expected {expected}")
                conv.set_weights([kernel, bias])


def _h5_arrays(group):
    arrays = []
    group.visititems(lambda _, obj: arrays.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def squeezenet(input_shape):
    """SqueezeNet 1.1 feature extractor, layer names matching the reference weights."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(64, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(3, 2, name="pool1")(x)
    plan = [(16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192), (64, 256), (64, 256)]
    fire = 2
    for step in plan:
        if step == "pool":
            x = keras.layers.MaxPooling2D(3, 2, name=f"pool{fire}")(x)
        else:
            x = FireModule(*step, name=f"fire{fire}")(x)
            fire += 1
    return keras.Model(inputs, x, name="backbone")


def _lenet5(x, cfg, common):
    x = ConvBNAct(6, 5, activation="tanh", name="c1", **common)(x)
    x = keras.layers.AveragePooling2D(2, name="s2")(x)
    x = ConvBNAct(16, 5, activation="tanh", name="c3", **common)(x)
    x = keras.layers.AveragePooling2D(2, name="s4")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(120, activation="tanh", name="f5")(x)
    return keras.layers.Dense(84, activation="tanh", name="f6")(x)


def _vgg(x, cfg, common):
    for stage in range(3):
        for i in range(cfg.depth):
            x = ConvBNAct(cfg.width * 2**stage, 3, name=f"block{stage + 1}_conv{i + 1}", **common)(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{stage + 1}_pool")(x)
    return x


def _nin(x, cfg, common):
    w = cfg.width
    x = NiNBlock(3 * w, 5, name="nin1", **common)(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same")(x)
    x = NiNBlock(6 * w, 5, name="nin2", **common)(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same")(x)
    return NiNBlock(8 * w, 3, name="nin3", **common)(x)


def _inception(x, cfg, common):
    w = cfg.width
    x = ConvBNAct(2 * w, 3, name="stem", **common)(x)
    x = InceptionBlock(w, w, 2 * w, w // 4, w // 2, w // 2, name="inception3a", **common)(x)
    x = InceptionBlock(2 * w, 2 * w, 3 * w, w // 2, 3 * w // 2, w, name="inception3b", **common)(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same")(x)
    x = InceptionBlock(3 * w, 3 * w // 2, 4 * w, w // 4, w, w, name="inception4a", **common)(x)
    x = InceptionBlock(4 * w, 2 * w, 5 * w, w // 2, 2 * w, 2 * w, name="inception4b", **common)(x)
    return keras.layers.MaxPooling2D(3, 2, padding="same")(x)


def _resnet(x, cfg, common):
    x = ConvBNAct(cfg.width, 3, name="stem", **common)(x)
    for stage in range(3):
        for i in range(cfg.depth):
            strides = 2 if stage > 0 and i == 0 else 1
            x = ResidualBlock(cfg.width * 2**stage, strides, bottleneck=cfg.bottleneck,
                              name=f"stage{stage + 1}_block{i + 1}", **common)(x)
    return x


def _densenet(x, cfg, common):
    x = ConvBNAct(2 * cfg.width, 3, name="stem", **common)(x)
    for stage in range(3):
        x = DenseBlock(cfg.depth * 2, cfg.width // 2, name=f"dense{stage + 1}", **common)(x)
        if stage < 2:
            x = ConvBNAct(x.shape[-1] // 2, 1, name=f"transition{stage + 1}", **common)(x)
            x = keras.layers.AveragePooling2D(2, name=f"transition{stage + 1}_pool")(x)
    return x


def _mobilenetv2(x, cfg, common):
    w = cfg.width
    x = ConvBNAct(w, 3, activation="relu6", name="stem", **common)(x)
    x = DepthwiseSeparableConv(w, name="separable", **common)(x)
    for stage, (mult, strides) in enumerate([(1.5, 1), (2, 2), (4, 2)]):
        for i in range(cfg.depth):
            x = InvertedResidual(int(w * mult), strides if i == 0 else 1, name=f"stage{stage + 1}_block{i + 1}", **common)(x)
    return ConvBNAct(8 * w, 1, activation="relu6", name="head_conv", **common)(x)


def scratch_body(arch, x, cfg, common):
    """The zoo network `arch` applied to `x`; cfg supplies width, depth and bottleneck."""
    return _SCRATCH_BUILDERS[arch](x, cfg, common)


_SCRATCH_BUILDERS = {"lenet5": _lenet5, "vgg": _vgg, "nin": _nin, "inception": _inception, "resnet": _resnet,
                     "densenet": _densenet, "mobilenetv2": _mobilenetv2}


def set_trainable_top(model, n_layers):
    """Freeze the backbone, then unfreeze its top `n_layers` (BatchNorm layers stay frozen)."""
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = False
    for layer in backbone.layers[-n_layers:] if n_layers else []:
        if not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
