"""dlib's face-recognition ResNet (Davis King, dlib 19.3: 99.38% on LFW) with its weights embedded.

A 29-convolution ResNet: a 7x7/2 convolution and a 3x3/2 max pool, then residual stages of
32, 64, 128 and 256 channels (3, 4, 3 and 3 blocks of two 3x3 convolutions) and a last downsampling
block; a global average pool and a 256 -> 128 linear layer without bias give the descriptor.
Two faces are the same person when their descriptors are closer than 0.6 (dlib's threshold).

The layer arithmetic is dlib's and must stay so: strided convolutions and pools are unpadded
("valid"), and a downsampling block's shortcut is a 2x2 average pool zero-extended to the branch's
channels and, when the input size is even, by one row and column: the branch is a pixel short
(`layers.ZeroPaddedAdd`, dlib's add_prev). TensorFlow's "same" padding on the strided layers moves
every descriptor by ~1.1 (cosine 0.68 to dlib's) instead of ~0.04.

That arithmetic needs inputs of at least MIN_DLIB_SIZE (103) pixels (150: feature maps 72, 35, 17,
8, 4, 2). Below it, as a backbone for small images, the strided layers pad "same" (maps exactly
size / stride), which the weights were not trained with.

Weights: the face-api port (npm @vladmandic/face-api 1.7.15, MIT) of dlib's public-domain model, as
tfjs uint8 tensors (data/embedded/dlib_face_resnet/). dlib's affine layers (its frozen batch norm,
y = x * weights + biases per channel) are folded into the preceding convolution at load time: the
same function, one op fewer per convolution, and plain Conv2D layers that fine-tuning, export and
quantisation all understand. Checked against dlib itself (dlib 20.0.1 and its
dlib_face_recognition_resnet_model_v1.dat) on 400 AT&T faces: descriptors 0.039 apart on average
(cosine 0.9996), the cost of 8-bit weights.

    >>> model = dlib_face_embedder()                 # pixels (150, 150, 3) in [0, 255] -> (128,)
    >>> model(np.zeros((1, 150, 150, 3), "uint8")).shape
    TensorShape([1, 128])
"""
import warnings
from pathlib import Path

import keras
import numpy as np

from backbones.registry import BackboneError, make_backbone, register_backbone
from backbones.tfjs_weights import read_tfjs_weights
from data.embedded import embedded_file
from layers import ImagePreprocess, ZeroPaddedAdd

WEIGHTS_FILE = "dlib_face_resnet/face_recognition_model-weights_manifest.json"
DEFAULT_WEIGHTS = embedded_file(WEIGHTS_FILE)
PREPROCESSING = "dlib"  # layers.ImagePreprocess: (RGB - dlib's mean RGB) / 256
NATIVE_SIZE = 150
DESCRIPTOR_DIM = 128
# (block name, filters, downsampling) in order; every block ends in a ReLU layer of the block's name.
BLOCKS = ([(f"conv32_{i}", 32, False) for i in (1, 2, 3)]
          + [("conv64_down", 64, True)] + [(f"conv64_{i}", 64, False) for i in (1, 2, 3)]
          + [("conv128_down", 128, True)] + [(f"conv128_{i}", 128, False) for i in (1, 2)]
          + [("conv256_down", 256, True)] + [(f"conv256_{i}", 256, False) for i in (1, 2)]
          + [("conv256_down_out", 256, True)])
FEATURE_LAYERS = ["conv32_down"] + [name for name, _, _ in BLOCKS]
# The last layer at each stride (2**level).
PYRAMID_LAYERS = {1: "conv32_down", 2: "conv32_3", 3: "conv64_3", 4: "conv128_2", 5: "conv256_2", 6: "conv256_down_out"}


def dlib_map_sizes(size):
    """Side of each pyramid level (strides 2..64) under dlib's unpadded arithmetic, or None when an
    input of `size` pixels is too small for it (a 3x3 convolution would have nothing to slide over)."""
    sizes, n = [], (size - 7) // 2 + 1 if size >= 7 else 0  # 7x7/2 convolution
    sizes.append(n)
    n = (n - 3) // 2 + 1 if n >= 3 else 0  # 3x3/2 max pool
    for _ in range(4):
        sizes.append(n)
        # a downsampling block: its 3x3/2 branch gives (n - 1) // 2, its 2x2/2 shortcut n // 2
        n = n // 2 if n >= 3 else 0
    sizes.append(n)
    return sizes if min(sizes) >= 1 else None


MIN_DLIB_SIZE = next(n for n in range(7, 512) if dlib_map_sizes(n))


def dlib_face_resnet(input_shape=(NATIVE_SIZE, NATIVE_SIZE, 3), weights=None, padding=None, name="backbone"):
    """The trunk as a suite backbone: preprocessed RGB (see PREPROCESSING) -> the last 256-channel map
    (2x2 at 150 pixels), with `pyramid_outputs` P1..P6, `feature_layers` and `pretrained_projection`
    ([kernel (256, 128), bias (128,)]: dlib's last layer, which has no bias, so zeros) when weights are
    loaded, else None.

    weights: None (random), "dlib" or "imagenet" (the embedded file) or a path to a tfjs weights
    manifest. padding: "dlib" (unpadded, as trained), "same" (any size; maps exactly size / stride),
    or None: "dlib" when the input allows it (>= MIN_DLIB_SIZE, or an unknown size), else "same".
    """
    sides = [s for s in input_shape[:2] if s is not None]
    if padding is None:
        padding = "dlib" if all(dlib_map_sizes(s) for s in sides) else "same"
        if padding == "same" and weights:
            warnings.warn(f"dlib_face_resnet at {tuple(input_shape[:2])} pixels, below the {MIN_DLIB_SIZE} its own "
                          "(unpadded) layers need: its strided layers pad 'same', which dlib's weights were not trained "
                          f"with (descriptors move by ~1.1); give {MIN_DLIB_SIZE}+ pixels to use them as trained",
                          stacklevel=2)
    if padding not in ("dlib", "same"):
        raise ValueError(f"padding must be 'dlib' or 'same'; got {padding!r}")
    if padding == "dlib" and not all(dlib_map_sizes(s) for s in sides):
        raise BackboneError(f"dlib_face_resnet with dlib's own (unpadded) layers needs images of at least "
                            f"{MIN_DLIB_SIZE} pixels; got {tuple(input_shape)}")
    strided = "valid" if padding == "dlib" else "same"
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(32, 7, 2, padding=strided, activation="relu", name="conv32_down")(inputs)
    x = keras.layers.MaxPooling2D(3, 2, padding=strided, name="max_pool")(x)
    for block, filters, down in BLOCKS:
        y = keras.layers.Conv2D(filters, 3, 2 if down else 1, padding=strided if down else "same", activation="relu",
                                name=f"{block}_conv1")(x)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{block}_conv2")(y)
        if down:
            shortcut = keras.layers.AveragePooling2D(2, 2, padding=strided, name=f"{block}_pool")(x)
            y = ZeroPaddedAdd(name=f"{block}_add")([y, shortcut])
        else:
            y = keras.layers.Add(name=f"{block}_add")([y, x])
        x = keras.layers.ReLU(name=block)(y)
    model = keras.Model(inputs, x)
    pyramid = {2 ** level: model.get_layer(layer).output for level, layer in PYRAMID_LAYERS.items()}
    backbone = make_backbone(inputs, x, pyramid, FEATURE_LAYERS, name=name)
    backbone.pretrained_projection = None
    if weights:
        load_dlib_face_weights(backbone, weights)
    return backbone


def weights_path(weights):
    """The manifest meant by `weights`: the embedded one for "dlib" / "imagenet", else the path given."""
    return DEFAULT_WEIGHTS if str(weights).lower() in ("dlib", "imagenet") else Path(weights)


def load_dlib_face_weights(backbone, weights="dlib"):
    """Load the tfjs weights into a `dlib_face_resnet` backbone, each convolution's affine folded in,
    and set `backbone.pretrained_projection`. Every manifest tensor must be used exactly once and
    every backbone weight set: a BackboneError names the file and the first tensor that does not fit."""
    path = weights_path(weights)
    arrays = read_tfjs_weights(path)
    unused = set(arrays)

    def take(key, shape):
        if key not in arrays:
            raise BackboneError(f"weights {path} do not fit dlib_face_resnet: no tensor {key!r}")
        if tuple(arrays[key].shape) != tuple(shape):
            raise BackboneError(f"weights {path} do not fit dlib_face_resnet: {key} is {tuple(arrays[key].shape)}, "
                                f"expected {tuple(shape)}")
        unused.discard(key)
        return arrays[key]

    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    for conv in convs:
        block, _, part = conv.name.rpartition("_")  # conv64_1_conv2 -> conv64_1/conv2; the stem has no part
        prefix = f"{block}/{part}" if part in ("conv1", "conv2") else conv.name
        filters = conv.kernel.shape[-1]
        kernel = take(f"{prefix}/conv/filters", conv.kernel.shape)
        bias = take(f"{prefix}/conv/bias", (filters,))
        scale = take(f"{prefix}/scale/weights", (filters,))
        shift = take(f"{prefix}/scale/biases", (filters,))
        # conv(x) * scale + shift == conv'(x) with the kernel's output channels scaled
        conv.set_weights([kernel * scale, bias * scale + shift])
    fc = take("fc", (256, DESCRIPTOR_DIM))
    if unused:
        raise BackboneError(f"weights {path} do not fit dlib_face_resnet: {len(unused)} tensors unused, "
                            f"e.g. {sorted(unused)[0]!r}")
    backbone.pretrained_projection = [fc, np.zeros(DESCRIPTOR_DIM, np.float32)]
    return backbone


@register_backbone("dlib_face_resnet", preprocessing=PREPROCESSING, pretrained=True, embedded_weights=WEIGHTS_FILE,
                   description="dlib's face-recognition ResNet (150x150 faces -> 128-d descriptors, LFW 99.38%), "
                               "5.6M parameters; weights embedded (--model.weights dlib)")
def _registered(input_shape, options=None, weights=None):
    return dlib_face_resnet(tuple(input_shape), weights)


def dlib_face_embedder(input_size=NATIVE_SIZE, weights="dlib"):
    """RGB pixels (input_size, input_size, 3) in [0, 255] (uint8 or float) -> dlib's 128-d descriptor:
    preprocessing, the trunk, global average pooling and dlib's last layer. Faces should be aligned
    crops as dlib's get_face_chip gives (150 pixels, eyes level, ~25% margin)."""
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = ImagePreprocess(PREPROCESSING, name="preprocess")(inputs)
    backbone = dlib_face_resnet((input_size, input_size, 3), weights)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(x))
    fc = keras.layers.Dense(DESCRIPTOR_DIM, use_bias=False, name="descriptor")
    outputs = fc(x)
    if backbone.pretrained_projection is not None:
        fc.set_weights(backbone.pretrained_projection[:1])
    return keras.Model(inputs, outputs, name="dlib_face_embedder")
