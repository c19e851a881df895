"""Segmentation networks: U-Net, FCN-8s and DeepLabV3+, fully convolutional over any image size.

Every model takes float pixels 0..255 of shape (H, W, channels), H and W multiples of
`model_stride(cfg)`, preprocesses them inside (so exports carry it) and returns float32 logits
(H, W, num_classes) named "logits".

- U-Net (Ronneberger et al. 2015): two 3x3 convolutions per level, 2x2 max pooling, 2x2
  up-convolutions and concatenated skips; padding "same" (the paper's valid convolutions shrink the
  map and need overlap tiling), batch norm optional, dropout at the bottom as in the paper. With
  `backbone` set, the suite backbone's pyramid levels P1..P<depth> are the contracting path (the
  embedded ImageNet SqueezeNet, VGG16 from a weights file, or any zoo network) and the expanding
  path is the same as the plain one.
- FCN-8s (Long et al. 2015): zero-initialised 1x1 class layers on the backbone's three coarsest
  levels up to P5, 2x transposed convolutions initialised as bilinear interpolation (learned) with skip
  sums, and a fixed bilinear transposed convolution back to the input resolution.
- DeepLabV3+ (Chen et al. 2018): keras-hub's DeepLabV3Backbone (ASPP on P4, the P2 low-level decoder)
  with the suite backbone as its `image_encoder`, and the 1x1 class layer of keras-hub's
  DeepLabV3ImageSegmenter; nothing of it is re-written here.

The suite backbone sits in a `PyramidEncoder` named "backbone": a functional model over the
backbone's own layers whose outputs are its pyramid levels, each padded or cropped at the bottom and
right to exactly size / stride (SqueezeNet's valid convolutions leave its maps a pixel short, which
no skip concatenation accepts), and which keeps `pyramid_outputs` when reloaded (keras-hub rebuilds
DeepLabV3 from it).

    >>> cfg = ModelConfig(arch="unet", width=8, depth=3)
    >>> model = build_segmenter(cfg, num_classes=3)
    >>> tuple(model(keras.ops.zeros((1, 64, 96, 3))).shape), model_stride(cfg)
    ((1, 64, 96, 3), 8)
"""
import dataclasses
import functools

import keras
import keras_hub
import tensorflow as tf

from apps.core.config import field
from apps.core.errors import UserError
from apps.core.finetune import FinetuneConfig
from backbones import BackboneOptions, backbone_names, build_backbone, get_backbone, preprocessing_layer
from layers import ConvBNAct, ImagePreprocess
from layers.initializers import BilinearUpsampling

ARCHS = ["unet", "fcn", "deeplabv3plus"]
# lenet5 ends in dense layers: it cannot take images of any size
BACKBONES = ["none"] + [name for name in backbone_names() if name != "lenet5"]


@dataclasses.dataclass
class ModelConfig(FinetuneConfig):
    arch: str = field("unet", "network: U-Net, FCN-8s or DeepLabV3+ (keras-hub)", ARCHS)
    backbone: str = field("none", "encoder: 'none' = U-Net's own contracting path; a suite backbone for fcn and "
                                  "deeplabv3plus (and optionally unet), e.g. squeezenet with --model.weights imagenet",
                          BACKBONES)
    width: int = field(16, "U-Net: filters of the first level, doubled per level; zoo backbones: base channels", min=1)
    depth: int = field(4, "U-Net: poolings of the contracting path (a backbone encoder: its deepest level used)",
                       min=1, max=6)
    backbone_depth: int = field(1, "zoo backbones: blocks per stage", min=1)
    batch_norm: bool = field(True, "batch normalisation after each convolution (U-Net, zoo backbones)")
    dropout: float = field(0.0, "dropout at the bottom of the U-Net / before FCN's class layer",
                           min=0.0, max=1.0, max_exclusive=True)
    # The paper's 6,12,18 suit 513-pixel crops (33x33 maps at stride 16); on 128-pixel crops (8x8 maps)
    # rates of 8 or more see only padding (a 1x1 convolution, as DeepLabv3 notes) and cost 3-4x the time on a CPU.
    aspp_rates: str = field("2,4,6", "deeplabv3plus: dilation rates of the ASPP branches on P4, comma-separated "
                                     "(the paper's 6,12,18 suit crops of about 512 pixels)")

    def check(self, prefix=""):
        if self.arch != "unet" and self.backbone == "none":
            raise ValueError(f"config key '{prefix}backbone' must name a backbone for {prefix}arch {self.arch} "
                             "(e.g. resnet, or squeezenet with --model.weights imagenet)")
        if self.weights and (self.backbone == "none" or not get_backbone(self.backbone).pretrained):
            raise ValueError(f"config key '{prefix}weights' needs a pretrained '{prefix}backbone' "
                             f"({', '.join(backbone_names(pretrained=True))}); U-Net's own encoder and the zoo train from scratch")
        _rates(self.aspp_rates, prefix)


def _rates(text, prefix=""):
    try:
        rates = [int(r) for r in str(text).split(",")]
    except ValueError:
        rates = []
    if not rates or min(rates) < 1:
        raise ValueError(f"config key '{prefix}aspp_rates' must be positive integers separated by commas; got {text!r}")
    return rates


def model_stride(cfg):
    """What the input height and width must be multiples of (the coarsest stride the network uses)."""
    if cfg.backbone == "none":
        return 2 ** cfg.depth
    return 2 ** max(_used_levels(cfg))


def _used_levels(cfg):
    """The backbone pyramid levels the architecture reads."""
    levels = _backbone_levels(cfg.backbone)
    if cfg.arch == "unet":
        used = [lv for lv in levels if 1 <= lv <= cfg.depth]
    elif cfg.arch == "fcn":
        top = max((lv for lv in levels if lv <= 5), default=0)
        used = [lv for lv in (top - 2, top - 1, top) if lv in levels]
        if len(used) < 3 or top < 3:
            raise UserError(f"fcn needs three consecutive pyramid levels up to P3 or coarser; backbone {cfg.backbone} "
                            f"declares {_names(levels)}")
    else:
        spp = 4 if 4 in levels else max(levels)
        used = [2, spp]
        if 2 not in levels or spp < 3:
            raise UserError(f"deeplabv3plus needs the stride-4 level P2 and a coarser one (P4); backbone "
                            f"{cfg.backbone} declares {_names(levels)}")
    if not used:
        raise UserError(f"backbone {cfg.backbone} has no pyramid level between P1 and P{cfg.depth} ({_names(levels)})")
    return used


def _names(levels):
    return ", ".join(f"P{lv}" for lv in sorted(levels)) or "none"


@functools.lru_cache(maxsize=None)
def _backbone_levels(name):
    """Pyramid levels backbone `name` declares (built once, without weights, to read them)."""
    return tuple(sorted(int(k[1:]) for k in _build_base(name, BackboneOptions(), None).pyramid_outputs))


def _build_base(name, options, weights):
    # zoo networks get a stride-4 stem (as in detection): full-resolution stages cost too much on a CPU
    options = dataclasses.replace(options, stem_stride=1 if get_backbone(name).pretrained else 4)
    return build_backbone(name, (None, None, 3), options, weights)


@keras.saving.register_keras_serializable(package="suite")
class PyramidEncoder(keras.Model):
    """A functional model whose outputs, {"P<n>": map at stride 2**n}, are also its `pyramid_outputs`
    (the attribute keras-hub's DeepLabV3Backbone reads), kept through save and reload."""

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.pyramid_outputs = dict(self.output)


def pyramid_encoder(cfg, levels):
    """The suite backbone `cfg.backbone` (weights loaded) as a PyramidEncoder named "backbone" with
    exactly sized levels `levels`."""
    options = BackboneOptions(width=cfg.width, depth=cfg.backbone_depth, batch_norm=cfg.batch_norm)
    base = _build_base(cfg.backbone, options, cfg.weights)
    maps = {lv: base.pyramid_outputs[f"P{lv}"] for lv in levels}
    probe = keras.Model(base.inputs, [maps[lv] for lv in levels])
    stride = 2 ** max(levels)
    offsets = [_offsets(probe, levels, (stride * k, stride * (k + 3))) for k in (4, 5)]
    if offsets[0] != offsets[1]:
        raise UserError(f"backbone {cfg.backbone}: its feature maps do not scale with the image size")
    outputs = {}
    for lv, (dh, dw) in zip(levels, offsets[0]):
        x = maps[lv]
        if dh > 0 or dw > 0:
            x = keras.layers.ZeroPadding2D(((0, max(dh, 0)), (0, max(dw, 0))), name=f"pad_p{lv}")(x)
        if dh < 0 or dw < 0:
            x = keras.layers.Cropping2D(((0, max(-dh, 0)), (0, max(-dw, 0))), name=f"crop_p{lv}")(x)
        outputs[f"P{lv}"] = x
    return PyramidEncoder(base.inputs, outputs, name="backbone")


def _offsets(probe, levels, size):
    """Per level, (rows, columns) missing from size / stride at input `size`."""
    specs = probe.compute_output_spec(keras.KerasTensor((1, *size, 3)))
    specs = specs if isinstance(specs, (list, tuple)) else [specs]
    return [(size[0] // 2**lv - s.shape[1], size[1] // 2**lv - s.shape[2]) for lv, s in zip(levels, specs)]


def build_segmenter(cfg, num_classes, channels=3):
    """The network `cfg.arch` (a ModelConfig): pixels 0..255 (None, None, channels) -> logits."""
    inputs = keras.Input((None, None, channels), name="image")
    if cfg.backbone == "none":
        if cfg.arch != "unet":
            raise UserError(f"model.arch {cfg.arch} needs a model.backbone")
        x = ImagePreprocess("tf", name="preprocess")(inputs)  # [-1, 1]
        outputs = _unet(cfg, x, None, num_classes)
    else:
        x = inputs if channels == 3 else keras.layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
        x = preprocessing_layer(cfg.backbone)(x)
        encoder = pyramid_encoder(cfg, _used_levels(cfg))
        build = {"unet": _unet_on_backbone, "fcn": _fcn, "deeplabv3plus": _deeplab}[cfg.arch]
        outputs = build(cfg, x, encoder, num_classes)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(outputs)
    return keras.Model(inputs, logits, name=f"{cfg.arch}_{cfg.backbone}")


def encoder_of(model):
    """The suite backbone inside a built segmenter (for DeepLabV3+ it is keras-hub's image encoder)."""
    names = [layer.name for layer in model.layers]
    if "deeplab" in names:
        return model.get_layer("deeplab").image_encoder
    return model.get_layer("backbone") if "backbone" in names else None


def _features(cfg, encoder, x):
    # Pretrained statistics stay: a backbone with loaded weights runs in inference mode.
    return encoder(x, training=False) if cfg.weights else encoder(x)


def _double_conv(x, filters, cfg, name):
    x = ConvBNAct(filters, 3, use_bn=cfg.batch_norm, name=f"{name}_conv1")(x)
    return ConvBNAct(filters, 3, use_bn=cfg.batch_norm, name=f"{name}_conv2")(x)


def _expand(cfg, x, skips, top, num_classes):
    """U-Net's expanding path from level `top` to the input resolution: up-convolution (2x2, stride 2,
    half the filters), concatenation with the skip of that level if there is one, two 3x3 convolutions."""
    for lv in range(top - 1, -1, -1):
        filters = cfg.width * 2**lv
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{lv}")(x)
        if lv in skips:
            x = keras.layers.Concatenate(name=f"skip{lv}")([x, skips[lv]])
        x = _double_conv(x, filters, cfg, f"dec{lv}")
    return keras.layers.Conv2D(num_classes, 1, name="classifier")(x)


def _unet(cfg, x, _, num_classes):
    skips = {}
    for lv in range(cfg.depth):
        skips[lv] = _double_conv(x, cfg.width * 2**lv, cfg, f"enc{lv}")
        x = keras.layers.MaxPooling2D(2, name=f"pool{lv}")(skips[lv])
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    x = _double_conv(x, cfg.width * 2**cfg.depth, cfg, "bottom")
    return _expand(cfg, x, skips, cfg.depth, num_classes)


def _unet_on_backbone(cfg, x, encoder, num_classes):
    features = {int(k[1:]): t for k, t in _features(cfg, encoder, x).items()}
    top = max(features)
    x = features.pop(top)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    return _expand(cfg, x, features, top, num_classes)


def _fcn(cfg, x, encoder, num_classes):
    features = {int(k[1:]): t for k, t in _features(cfg, encoder, x).items()}
    low, mid, top = sorted(features)
    if cfg.dropout:
        features[top] = keras.layers.Dropout(cfg.dropout, name="dropout")(features[top])
    score = {lv: keras.layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=f"score_p{lv}")(features[lv])
             for lv in (low, mid, top)}
    x = score[top]
    for lv in (mid, low):
        x = keras.layers.Conv2DTranspose(num_classes, 4, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=BilinearUpsampling(), name=f"up_p{lv + 1}")(x)
        x = keras.layers.Add(name=f"fuse_p{lv}")([x, score[lv]])
    factor = 2**low
    final = keras.layers.Conv2DTranspose(num_classes, 2 * factor, strides=factor, padding="same", use_bias=False,
                                         kernel_initializer=BilinearUpsampling(), name="upsample")
    final.trainable = False  # FCN keeps the last upsampling fixed at bilinear interpolation
    return final(x)


def _resize_any_size(original):
    """Keras 3.x's UpSampling2D (bilinear) checks `size[0] <= 0` in Python, which fails on a tensor, so it cannot
    run where height and width are unknown (whole-image evaluation, any-size SavedModels). keras-hub's DeepLabV3
    builds it by name when built and when loaded, so its resize is given the same resize from tf.shape instead."""

    def resize(self, x, height_factor, width_factor, data_format, interpolation="nearest"):
        if interpolation == "nearest" or data_format != "channels_last" or None not in tuple(x.shape[1:3]):
            return original(self, x, height_factor, width_factor, data_format, interpolation)
        shape = tf.shape(x)
        return tf.image.resize(x, tf.stack([shape[1] * height_factor, shape[2] * width_factor]), method=interpolation)

    resize.any_size = True
    return resize


if not getattr(keras.layers.UpSampling2D._resize_images, "any_size", False):
    keras.layers.UpSampling2D._resize_images = _resize_any_size(keras.layers.UpSampling2D._resize_images)


def _deeplab(cfg, x, encoder, num_classes):
    spp = max(int(k[1:]) for k in encoder.pyramid_outputs)
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key=f"P{spp}", upsampling_size=2 ** (spp - 2),
        dilation_rates=_rates(cfg.aspp_rates), low_level_feature_key="P2", projection_filters=48, name="deeplab")
    # keras-hub's DeepLabV3ImageSegmenter is this backbone and this one layer; the Task itself is not
    # nested here because it compiles itself when built and again when loaded, so every saved model
    # would warn at load time (a compile config or optimizer variables it cannot restore).
    head = keras.layers.Conv2D(num_classes, 1, use_bias=False, padding="same", name="segmentation_output")
    return head(backbone(x))
