"""EfficientNet-Lite0 (Tan & Le 2019; Google's "lite" variant for mobile accelerators), headless,
with ImageNet weights ported from Google's TensorFlow checkpoint.

Lite0 is EfficientNet-B0 without squeeze-and-excite, with ReLU6 instead of swish, and with the
stem (32) and head (1280) widths fixed: 4.7M parameters with the classifier, 3.4M without.

Why our own layer plan and not keras-hub's `EfficientNetBackbone`: keras-hub can be configured as
Lite0 (squeeze-excite ratio 0, relu6; its timm converter does so for timm's `efficientnet_lite0`),
but it pads every stride-2 convolution symmetrically, PyTorch style, as timm trained that model.
These weights were trained in TensorFlow with "SAME" padding, which pads a stride-2 convolution of
an even-sized input one pixel more at the bottom/right than at the top/left; Keras'
`padding="same"` does exactly that. With symmetric padding the weights still classify, but worse
(CIFAR-10 photos mapped to ImageNet classes: top-1 0.163 instead of 0.207, top-5 0.352 instead of
0.437). keras.applications has no Lite variant (its EfficientNets have squeeze-excite and swish).

Input: RGB floats already normalised with PREPROCESSING, a `layers.ImagePreprocess` mode: "tf",
pixels in [0, 255] -> x / 127.5 - 1 (Google's lite checkpoints use (x - 127) / 128: the same to
within 0.4%, and the same predictions). ImageNet mean/std input ("torch") is clearly worse (top-1
0.122, top-5 0.267 on the same images), and the stem's batch-norm variance predicted from photo
statistics is 0.68x the recorded one with "tf" scaling against 3.4x with "torch" scaling.
See backbones/convert_efficientnet_lite.py for the verification.

>>> model = efficientnet_lite0((224, 224, 3))
>>> load_efficientnet_lite0_weights(model)                 # the shipped float16 file
>>> features = keras.Model(model.input, {k: model.get_layer(v).output for k, v in PYRAMID_LAYERS.items()})
>>> {k: v.shape[1] for k, v in features(np.zeros((1, 224, 224, 3), "float32")).items()}
{'P1': 112, 'P2': 56, 'P3': 28, 'P4': 14, 'P5': 7}
"""
import keras
import numpy as np

from backbones.registry import BackboneError, from_layer_names, register_backbone
from backbones.weights import open_h5
from data.embedded import embedded_file

WEIGHTS_FILE = "efficientnet_lite0_imagenet_notop_fp16.h5"
DEFAULT_WEIGHTS = embedded_file(WEIGHTS_FILE)
PREPROCESSING = "tf"  # layers.ImagePreprocess mode: pixels in [0, 255] -> x / 127.5 - 1

STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99  # TensorFlow's values; the checkpoint's statistics assume eps 1e-3
# One row per stage: (kernel size, stride of its first block, expansion ratio, output channels, blocks).
STAGES = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]


def block_names():
    """Names of the 16 blocks in order: block1a, block2a, block2b, ..., block7a."""
    return [f"block{s + 1}{chr(ord('a') + r)}" for s, stage in enumerate(STAGES) for r in range(stage[4])]


def _block_outputs():
    names, out, channels = iter(block_names()), [], STEM_FILTERS
    for _kernel, stride, _expansion, filters, repeats in STAGES:
        for r in range(repeats):
            skip = (stride == 1 or r > 0) and channels == filters
            out.append(f"{next(names)}_{'add' if skip else 'project_bn'}")
            channels = filters
    return out


# Last layer at strides 2, 4, 8, 16, 32: the expanded activation feeding each stride-2 depthwise
# convolution (the widest map at that stride), and the head's activation at stride 32.
PYRAMID_LAYERS = {"P1": "block2a_expand_activation", "P2": "block3a_expand_activation",
                  "P3": "block4a_expand_activation", "P4": "block6a_expand_activation", "P5": "top_activation"}
# The stem, every block's output (narrow: 16..320 channels) and the head.
FEATURE_LAYERS = ["stem_activation", *_block_outputs(), "top_activation"]


def _bn_relu6(x, prefix, activation=True):
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{prefix}_activation")(x) if activation else x


def _mbconv(x, name, kernel_size, strides, expansion, filters, drop_rate):
    """Inverted residual: 1x1 expand -> kxk depthwise -> linear 1x1 project (+ identity)."""
    inputs = x
    channels = x.shape[-1]
    if expansion != 1:
        x = keras.layers.Conv2D(channels * expansion, 1, use_bias=False, name=f"{name}_expand_conv")(x)
        x = _bn_relu6(x, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(kernel_size, strides, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = _bn_relu6(x, f"{name}_dwconv")
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = _bn_relu6(x, f"{name}_project", activation=False)
    if strides == 1 and channels == filters:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite0(input_shape=(224, 224, 3), name="backbone", drop_connect_rate=0.0):
    """Headless EfficientNet-Lite0: (H, W, 3) preprocessed RGB -> (H/32, W/32, 1280) features.

    Layer names follow keras.applications' EfficientNet: `stem_conv`, `block2a_expand_conv`,
    `block2a_dwconv`, `block2a_project_conv` (each with `_bn` and, but for the projection, `_activation`),
    `block2b_add`, ..., `top_conv`, `top_bn`, `top_activation`. `drop_connect_rate` (0.2 in Google's
    training) drops whole residual branches while training, linearly more in deeper blocks.
    """
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(STEM_FILTERS, 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn_relu6(x, "stem")
    names = block_names()
    index = 0
    for kernel_size, strides, expansion, filters, repeats in STAGES:
        for r in range(repeats):
            rate = drop_connect_rate * index / len(names)
            x = _mbconv(x, names[index], kernel_size, strides if r == 0 else 1, expansion, filters, rate)
            index += 1
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn_relu6(x, "top")
    return keras.Model(inputs, x, name=name)


def load_efficientnet_lite0_weights(model, path=None):
    """Copy the converted ImageNet weights (an h5 file of `/<layer>/<weight>` float16 arrays, written
    by backbones.convert_efficientnet_lite) into `model`, a network built by `efficientnet_lite0`.

    Raises BackboneError, naming the file, when it is missing, not HDF5 or does not fit the model.
    """
    path = path if path is not None else DEFAULT_WEIGHTS
    with open_h5(path) as f:
        layers = {layer.name: layer for layer in model.layers if layer.weights}
        extra = sorted(set(f.keys()) - set(layers))
        missing = sorted(set(layers) - set(f.keys()))
        if extra or missing:
            raise BackboneError(f"EfficientNet-Lite0 weights file {path} does not fit model {model.name!r}: "
                             f"{len(missing)} layers missing from the file {missing[:3]}, "
                             f"{len(extra)} unknown layers in it {extra[:3]}")
        for layer_name, layer in layers.items():
            group = f[layer_name]
            values = []
            for weight in layer.weights:
                key = weight.name
                if key not in group or tuple(group[key].shape) != tuple(weight.shape):
                    got = tuple(group[key].shape) if key in group else "nothing"
                    raise BackboneError(f"EfficientNet-Lite0 weights file {path} does not fit model {model.name!r}: "
                                     f"{layer_name}/{key} should be {tuple(weight.shape)}, the file has {got}")
                values.append(np.asarray(group[key], dtype=weight.dtype))
            layer.set_weights(values)


@register_backbone("efficientnet_lite0", preprocessing=PREPROCESSING, pretrained=True, embedded_weights=WEIGHTS_FILE,
                   description="EfficientNet-Lite0: ImageNet top-1 ~75%, 3.4M parameters (headless), made for CPUs; "
                               "weights embedded")
def _registered(input_shape, options=None, weights=None):
    model = efficientnet_lite0(input_shape)
    if weights:
        load_efficientnet_lite0_weights(model, None if weights == "imagenet" else weights)
    return from_layer_names(model, PYRAMID_LAYERS, FEATURE_LAYERS)
