"""SqueezeNet 1.1 (Iandola 2016) with the ImageNet weights shipped in data/embedded (caffe BGR input)."""
import keras

from backbones.registry import BackboneError, make_backbone, register_backbone
from backbones.weights import h5_arrays, open_h5
from data.embedded import embedded_file
from layers import FireModule

WEIGHTS = embedded_file("squeezenet_v1.1_imagenet_notop.h5")
FEATURE_LAYERS = ["conv1"] + [f"fire{i}" for i in range(2, 10)]


@register_backbone("squeezenet", preprocessing="caffe", pretrained=True, embedded_weights=WEIGHTS.name,
                   description="SqueezeNet 1.1: ImageNet top-1 ~58%, 0.7M parameters; weights embedded")
def squeezenet(input_shape, options=None, weights=None):
    """SqueezeNet 1.1 feature extractor, layer names matching the reference weights (valid padding,
    so its maps are a pixel short of size / stride)."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(64, 3, strides=2, activation="relu", name="conv1")(inputs)
    pyramid = {2: x}
    x = keras.layers.MaxPooling2D(3, 2, name="pool1")(x)
    plan = [(16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192), (64, 256), (64, 256)]
    fire, stride = 2, 4
    for step in plan:
        if step == "pool":
            pyramid[stride] = x
            x = keras.layers.MaxPooling2D(3, 2, name=f"pool{fire}")(x)
            stride *= 2
        else:
            x = FireModule(*step, name=f"fire{fire}")(x)
            fire += 1
    pyramid[stride] = x
    backbone = make_backbone(inputs, x, pyramid, FEATURE_LAYERS)
    if weights:
        load_squeezenet_weights(backbone, WEIGHTS if weights == "imagenet" else weights)
    return backbone


def load_squeezenet_weights(backbone, path):
    """Copy the Keras-2 h5 SqueezeNet 1.1 weights (groups conv1, fireN/squeeze1x1, ...) into `backbone`."""
    with open_h5(path) as f:
        for layer in backbone.layers:
            convs = {"conv1": layer} if layer.name == "conv1" else (
                {f"{layer.name}/{c.name}": c for c in (layer.squeeze1x1, layer.expand1x1, layer.expand3x3)}
                if isinstance(layer, FireModule) else {})
            for group_name, conv in convs.items():
                if group_name not in f:
                    raise BackboneError(f"weights file {path} does not fit squeezenet: it has no group {group_name!r}")
                arrays = h5_arrays(f[group_name])
                kernel = next((a for a in arrays if a.ndim == 4), None)
                bias = next((a for a in arrays if a.ndim == 1), None)
                expected = tuple(conv.kernel.shape)
                if kernel is None or bias is None or kernel.shape != expected:
                    got = None if kernel is None else kernel.shape
                    raise BackboneError(f"weights file {path} does not fit squeezenet: {group_name} kernel is {got}, "
                                        f"expected {expected}")
                conv.set_weights([kernel, bias])
