"""One registry of backbones, filled beside their definitions by `@register_backbone`.

A backbone is a functional `keras.Model` named "backbone" that carries, as keras-hub's
FeaturePyramidBackbone does, `pyramid_outputs`: {"P<n>": feature map at stride 2**n}, declared
where the network is defined (never found by scanning shapes), and `feature_layers`: the names of
its intermediate layers worth extracting (style transfer, perceptual losses).
"""
import dataclasses
import math
from typing import Callable, Optional

import keras

from data.errors import DataError


class BackboneError(DataError):
    """A backbone cannot be built as asked: unknown name, input size, or a weights file that does not fit
    (a DataError, so the CLI prints it as one line)."""


@dataclasses.dataclass
class BackboneOptions:
    """What the zoo networks take; pretrained backbones have a fixed shape and ignore it."""

    width: int = 16
    depth: int = 2
    bottleneck: bool = False
    batch_norm: bool = True
    init: str = "he"  # he | xavier
    l2: float = 0.0
    stem_stride: int = 1  # 4: a stride-4 stem first (detection), so the three stages give strides 4, 8, 16


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable  # build(input_shape, options, weights) -> backbone keras.Model
    preprocessing: str  # an ImagePreprocess mode, or "standardize" (zoo: mean/variance of the training data)
    pretrained: bool  # has published weights (`--model.weights imagenet` or a file)
    description: str
    embedded_weights: Optional[str] = None  # data/embedded file used for weights="imagenet"


_BACKBONES = {}


def register_backbone(name, *, preprocessing, description, pretrained=False, embedded_weights=None):
    """Decorator registering `build(input_shape, options, weights)` under `name`."""

    def decorator(build):
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        _BACKBONES[name] = BackboneSpec(name, build, preprocessing, pretrained, description, embedded_weights)
        return build

    return decorator


def backbone_names(pretrained=None):
    """Every registered name (zoo first, in definition order), or only the (non-)pretrained ones."""
    return [n for n, s in _BACKBONES.items() if pretrained is None or s.pretrained == pretrained]


def get_backbone(name):
    if name not in _BACKBONES:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(_BACKBONES)}")
    return _BACKBONES[name]


def make_backbone(inputs, output, pyramid, feature_layers=(), name="backbone"):
    """The backbone Model with `pyramid_outputs` from {stride: tensor} and its named feature layers."""
    model = keras.Model(inputs, output, name=name)
    model.pyramid_outputs = {f"P{round(math.log2(stride))}": t for stride, t in sorted(pyramid.items())}
    model.feature_layers = list(feature_layers)
    return model


def from_layer_names(model, pyramid_layers, feature_layers=(), name="backbone"):
    """A backbone from a built network and {"P<n>": layer name} (keras.applications-style nets)."""
    backbone = keras.Model(model.input, model.outputs[0], name=name)
    backbone.pyramid_outputs = {level: model.get_layer(layer).output for level, layer in pyramid_layers.items()}
    backbone.feature_layers = list(feature_layers)
    return backbone


def build_backbone(name, input_shape, options=None, weights=None):
    """Build backbone `name` for images of `input_shape` (after its preprocessing).
    `weights`: None (random), "imagenet" (the embedded file, or a download for keras.applications)
    or a weights file path; zoo networks train from scratch only."""
    spec = get_backbone(name)
    if weights and not spec.pretrained:
        raise BackboneError(f"{name} is a zoo network trained from scratch; --model.weights applies to the pretrained "
                            f"backbones ({', '.join(backbone_names(pretrained=True))})")
    try:
        backbone = spec.build(tuple(input_shape), options or BackboneOptions(), weights)
    except BackboneError:
        raise
    except ValueError as e:  # e.g. pooling past 1 pixel on small images
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackboneError(f"{name} cannot take images of shape {tuple(input_shape)} ({detail}); raise "
                            "--data.image_size (or choose a backbone that downsamples less)") from None
    if weights:
        # Loaded BatchNorm statistics stay: a BatchNormalization layer that is not trainable runs in
        # inference mode. (Calling the backbone with training=False is not enough: Keras 3.15 still
        # updates the moving statistics of layers inside it during fit.)
        for layer in _all_layers(backbone):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return backbone


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def pyramid_levels(backbone, min_level, max_level):
    """{level: feature map} of `backbone` for min_level..max_level (levels it lacks are left out)."""
    return {int(k[1:]): t for k, t in backbone.pyramid_outputs.items() if min_level <= int(k[1:]) <= max_level}


def feature_extractor(backbone, layer_names, name="features"):
    """A Model from the backbone's input to {layer name: output} for the named intermediate layers."""
    known = {layer.name for layer in backbone.layers}
    missing = [n for n in layer_names if n not in known]
    if missing:
        hint = backbone.feature_layers or sorted(known)
        raise BackboneError(f"backbone {backbone.name!r} has no layer {missing[0]!r}; feature layers: {', '.join(hint)}")
    return keras.Model(backbone.input, {n: backbone.get_layer(n).output for n in layer_names}, name=name)
