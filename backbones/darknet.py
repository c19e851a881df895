"""darknet networks as Keras models, built from their cfg with Keras layers, and darknet's weights loaded.

`build_darknet(sections)` turns a parsed cfg (backbones.darknet_files) into a functional Keras model
from RGB pixels in [0, 255] to the raw output of each [yolo] head; `build_yolov4_tiny()` is YOLOv4-tiny
(Bochkovskiy et al. 2020; CSPDarknet53-tiny, two heads on 13x13 and 26x26 grids at 416 pixels, three
anchors each, 6.06M parameters), its cfg written out here so the network needs no file.

    >>> model = build_yolov4_tiny(weights="yolov4-tiny.weights")       # COCO, 80 classes
    >>> [o.shape for o in model.outputs]
    [(None, 13, 13, 255), (None, 26, 26, 255)]
    >>> detect_image(model, pixels)                                     # backbones.yolo_decode
    >>> tuned = build_yolov4_tiny(num_classes=3, weights="yolov4-tiny.weights")  # new class channels

darknet's arithmetic, kept exactly:
- a convolution pads size // 2 on every side (`pad=1`): Keras' "same" for stride 1, but a 3x3 stride-2
  convolution pads 1 on top and left as well, where "same" pads only the bottom and right: such a
  convolution gets an explicit ZeroPadding2D and "valid";
- batch norm is (x - mean) / sqrt(variance + 1e-5) * gamma + beta (AlexeyAB's darknet; pjreddie's
  added 1e-6 to the standard deviation instead), `leaky` has slope 0.1;
- a max pool pads size - 1 cells, (size - 1) // 2 of them before, with cells outside ignored: Keras'
  "same" whenever the two agree (the 2x2 stride-2 pools, and 2x2 stride 1 of yolov3-tiny);
- `[route] groups=g group_id=i` passes the i-th of g channel slices (layers.ChannelGroup);
  `[upsample]` repeats each cell (nearest neighbour).
Layers are named after darknet's numbering: conv_<i>, bn_<i>, leaky_<i>, route_<i>, and each head's
output yolo_<i>, so weights load by name.
"""
from pathlib import Path

import keras

from backbones.darknet_files import (ConvSpec, Section, conv_specs, parse_darknet_cfg, read_darknet_weights,
                                     route_inputs, section)
from backbones.registry import BackboneError
from backbones.yolo_decode import YoloHead
from layers import ChannelGroup
from layers.conv_bn_act import BN_MOMENTUM

BN_EPSILON = 1e-5
LEAKY_SLOPE = 0.1
COCO_ANCHORS = (10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319)  # yolov4-tiny's, (w, h) in 416-pixel inputs
YOLOV4_TINY_STRIDES = (32, 16)  # of its heads, in cfg order (13x13 and 26x26 grids at 416; a test checks)

# Per layer kind: options the builder uses, options that must keep darknet's default (other values
# change the network and are not built), and options only training reads.
_USED = {"convolutional": {"batch_normalize", "filters", "size", "stride", "pad", "padding", "activation"},
         "route": {"layers", "groups", "group_id"},
         "maxpool": {"size", "stride", "padding"},
         "upsample": {"stride"},
         "yolo": {"mask", "anchors", "classes", "num", "scale_x_y"}}
_DEFAULT_ONLY = {"convolutional": {"groups": 1, "dilation": 1, "antialiasing": 0, "binary": 0, "xnor": 0},
                 "maxpool": {"antialiasing": 0, "maxpool_depth": 0},
                 "upsample": {"scale": 1},
                 "yolo": {"new_coords": 0}}
_TRAINING_ONLY = {"yolo": {"jitter", "cls_normalizer", "iou_normalizer", "obj_normalizer", "iou_loss", "ignore_thresh",
                           "truth_thresh", "iou_thresh", "iou_thresh_kind", "random", "resize", "nms_kind", "beta_nms",
                           "max_delta", "counters_per_class", "label_smooth_eps", "focal_loss", "max",
                           "objectness_smooth", "uc_normalizer", "delta_normalizer"}}
_ACTIVATIONS = {"leaky": lambda name: keras.layers.LeakyReLU(LEAKY_SLOPE, name=name),
                "relu": lambda name: keras.layers.ReLU(name=name),
                "logistic": lambda name: keras.layers.Activation("sigmoid", name=name),
                "mish": lambda name: keras.layers.Activation("mish", name=name),
                "linear": None}


def yolov4_tiny_sections(classes=80, size=416):
    """YOLOv4-tiny's cfg as Sections: three CSP-tiny stages, a 13x13 head and, upsampled and joined
    with the last stage's 26x26 map, a 26x26 head (anchors 1-3: anchor 0 is unused, as in darknet's cfg)."""
    def conv(filters, size=3, stride=1, activation="leaky"):
        options = {"batch_normalize": 1} if activation != "linear" else {}
        return section("convolutional", **options, filters=filters, size=size, stride=stride, pad=1,
                       activation=activation)

    def yolo(mask):
        return section("yolo", mask=mask, anchors=COCO_ANCHORS, classes=classes, num=len(COCO_ANCHORS) // 2,
                       scale_x_y=1.05)

    head = 3 * (5 + classes)
    layers = [section("net", width=size, height=size, channels=3), conv(32, stride=2), conv(64, stride=2)]
    for width in (64, 128, 256):  # CSP-tiny stage: half the channels through two convolutions, joined back
        layers += [conv(width), section("route", layers=-1, groups=2, group_id=1), conv(width // 2),
                   conv(width // 2), section("route", layers=[-1, -2]), conv(width, 1),
                   section("route", layers=[-6, -1]), section("maxpool", size=2, stride=2)]
    layers += [conv(512), conv(256, 1), conv(512), conv(head, 1, activation="linear"), yolo([3, 4, 5]),
               section("route", layers=-4), conv(128, 1), section("upsample", stride=2),
               section("route", layers=[-1, 23]), conv(256), conv(head, 1, activation="linear"), yolo([1, 2, 3])]
    return layers


def yolov4_tiny_heads(num_classes=80):
    """[(YoloHead, stride)] of YOLOv4-tiny's heads in output order, without building the network."""
    layers = yolov4_tiny_sections(num_classes)[1:]
    heads = [_head(s, i, num_classes) for i, s in enumerate(layers) if s.kind == "yolo"]
    return list(zip(heads, YOLOV4_TINY_STRIDES))


def head_convolutions(sections):
    """Names of the convolutions that feed a [yolo] head (their class channels are new when fine-tuning)."""
    layers = sections[1:]
    return [f"conv_{i}" for i in range(len(layers) - 1) if layers[i + 1].kind == "yolo"]


def build_darknet(sections, input_size=None, num_classes=None, name="darknet"):
    """The Keras model of a parsed darknet cfg: pixels (H, W, channels) in [0, 255] -> the raw output
    of each [yolo] head (b, S_h, S_w, anchors * (5 + classes)), in cfg order. `input_size`: an int or
    (H, W), default the cfg's; `num_classes`: the classes of every head (default the cfg's; other
    values change the width of the convolution before each head). The model carries `yolo_heads`
    ([YoloHead]) for decoding and `darknet_sections` (the cfg as built, the weights file's layout)."""
    net = sections[0]
    if input_size is None:
        input_size = (net.int("height"), net.int("width"))
    height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    inputs = keras.Input((height, width, net.int("channels", 3)), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)  # darknet feeds RGB in [0, 1]
    layers = sections[1:]
    outputs, heads, head_outputs = [], [], []
    for index, s in enumerate(layers):
        _check_options(s)
        previous = outputs[-1] if outputs else x
        if s.kind == "convolutional":
            is_head = index + 1 < len(layers) and layers[index + 1].kind == "yolo"
            filters = _head_filters(s, layers[index + 1], num_classes) if is_head else s.int("filters")
            y = _conv(s, index, previous, filters)
        elif s.kind == "route":
            y = _route(s, index, outputs, layers)
        elif s.kind == "maxpool":
            y = _maxpool(s, index, previous)
        elif s.kind == "upsample":
            stride = s.int("stride", 2)
            if stride < 1:
                raise BackboneError(f"{s.where}: [upsample] stride={stride} (downsampling) is not supported")
            y = keras.layers.UpSampling2D(stride, interpolation="nearest", name=f"upsample_{index}")(previous)
        elif s.kind == "yolo":
            head = _head(s, index, num_classes)
            y = keras.layers.Identity(name=head.name)(previous)
            heads.append(head)
            head_outputs.append(y)
        else:
            raise BackboneError(f"{s.where}: darknet layer [{s.kind}] is not supported (this builder takes "
                                f"{', '.join(sorted(_USED))})")
        outputs.append(y)
    if not heads:
        raise BackboneError(f"darknet cfg ({sections[0].where}) has no [yolo] head")
    model = keras.Model(inputs, head_outputs, name=name)
    model.yolo_heads = heads
    model.darknet_sections = sections
    return model


def _check_options(s):
    allowed = _USED.get(s.kind, set()) | set(_DEFAULT_ONLY.get(s.kind, {})) | _TRAINING_ONLY.get(s.kind, set())
    for key, value in s.options.items():
        if key not in allowed and s.kind in _USED:
            raise BackboneError(f"{s.lines.get(key, s.where)}: [{s.kind}] option {key}={value} is not supported by "
                                "this builder")
    for key, default in _DEFAULT_ONLY.get(s.kind, {}).items():
        if key in s.options and s.float(key) != default:
            raise BackboneError(f"{s.lines.get(key, s.where)}: [{s.kind}] {key}={s.options[key]} is not supported "
                                f"(only {default})")


def _head_mask(yolo):
    """The anchors a [yolo] head uses: `mask`, or without one the first `num` (darknet's default 1)."""
    return yolo.ints("mask", list(range(yolo.int("num", 1))))


def _head_filters(conv, yolo, num_classes):
    anchors = len(_head_mask(yolo))
    written = conv.int("filters")
    if written != anchors * (5 + yolo.int("classes", 20)):
        raise BackboneError(f"{conv.where}: the convolution before [yolo] has filters={written}; its {anchors} anchors "
                            f"of {yolo.int('classes', 20)} classes need {anchors * (5 + yolo.int('classes', 20))}")
    return anchors * (5 + (yolo.int("classes", 20) if num_classes is None else num_classes))


def _conv(s, index, x, filters):
    size, stride = s.int("size", 1), s.int("stride", 1)
    pad = size // 2 if s.int("pad", 0) else s.int("padding", 0)
    batch_norm = bool(s.int("batch_normalize", 0))
    activation = s.str("activation", "logistic")
    if activation not in _ACTIVATIONS:
        raise BackboneError(f"{s.where}: activation={activation} is not supported ({', '.join(_ACTIVATIONS)})")
    if stride == 1 and 2 * pad == size - 1:
        padding = "same"  # Keras pads (size - 1) / 2 on each side too
    else:
        padding = "valid"
        if pad:
            x = keras.layers.ZeroPadding2D(pad, name=f"pad_{index}")(x)
    x = keras.layers.Conv2D(filters, size, stride, padding=padding, use_bias=not batch_norm, name=f"conv_{index}")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"bn_{index}")(x)
    make_activation = _ACTIVATIONS[activation]
    return make_activation(f"{activation}_{index}")(x) if make_activation else x


def _route(s, index, outputs, layers):
    sources = route_inputs(s.ints("layers"), index)
    for i in sources:
        if not 0 <= i < index:
            raise BackboneError(f"{s.where}: [route] layers={s.options['layers']} refers to layer {i}, which is not "
                                f"before layer {index}")
        if layers[i].kind == "yolo":
            raise BackboneError(f"{s.where}: a [route] from a [yolo] layer is not supported")
    groups, group_id = s.int("groups", 1), s.int("group_id", 0)
    parts = [outputs[i] for i in sources]
    if groups > 1:
        names = [f"route_{index}"] if len(parts) == 1 else [f"route_{index}_group{j}" for j in range(len(parts))]
        parts = [ChannelGroup(groups, group_id, name=n)(p) for n, p in zip(names, parts)]
    if len(parts) == 1:
        return parts[0]
    sizes = {tuple(p.shape[1:3]) for p in parts}
    if len(sizes) > 1:
        raise BackboneError(f"{s.where}: [route] layers={s.options['layers']} joins maps of sizes {sorted(sizes)}: "
                            "the input size must be a multiple of the network's total stride (32 for YOLO)")
    return keras.layers.Concatenate(name=f"route_{index}")(parts)


def _maxpool(s, index, x):
    size = s.int("size", 1)
    stride = s.int("stride", 1)
    pad = s.int("padding", size - 1)
    for n in x.shape[1:3]:
        darknet_out, darknet_before = (n + pad - size) // stride + 1, pad // 2
        same_out = -(-n // stride)
        same_before = max((same_out - 1) * stride + size - n, 0) // 2
        if (darknet_out, darknet_before) != (same_out, same_before):
            raise BackboneError(f"{s.where}: a {size}x{size} stride-{stride} max pool with padding {pad} on a "
                                f"{n}-cell map differs from Keras' 'same' pooling and is not supported")
    return keras.layers.MaxPooling2D(size, stride, padding="same", name=f"maxpool_{index}")(x)


def _head(s, index, num_classes):
    anchors = s.floats("anchors")
    if len(anchors) % 2:
        raise BackboneError(f"{s.where}: [yolo] anchors= needs (w, h) pairs; got {len(anchors)} numbers")
    pairs = list(zip(anchors[::2], anchors[1::2]))
    mask = _head_mask(s)
    if not all(0 <= m < len(pairs) for m in mask):
        raise BackboneError(f"{s.where}: [yolo] mask={s.options.get('mask')} names anchors beyond the {len(pairs)} given")
    classes = s.int("classes", 20) if num_classes is None else num_classes
    return YoloHead(tuple(pairs[m] for m in mask), classes, s.float("scale_x_y", 1.0), name=f"yolo_{index}")


def load_darknet_weights(model, weights_path, cfg_path=None):
    """Load a darknet `.weights` file into a model from build_darknet; the file's layout is the cfg at
    `cfg_path` (default: the one the model was built from). A head whose class count differs from the
    file's gets the file's box and objectness channels and keeps its own (fresh) class channels, so a
    COCO detector starts fine-tuning on other classes knowing where objects are. Returns the header.
    A BackboneError names the file when it is missing, does not fit the cfg, or the cfg the model."""
    sections = parse_darknet_cfg(cfg_path) if cfg_path else getattr(model, "darknet_sections", None)
    if sections is None:
        raise BackboneError(f"model {model.name!r} was not built by build_darknet: pass the cfg_path that describes "
                            f"{weights_path}")
    cfg_name = str(cfg_path) if cfg_path else f"the cfg of model {model.name!r}"
    header, convs = read_darknet_weights(weights_path, conv_specs(sections), cfg_name)
    layers = sections[1:]
    for conv in convs:
        spec = conv.spec
        head = layers[spec.index + 1] if spec.index + 1 < len(layers) and layers[spec.index + 1].kind == "yolo" else None
        _load_conv(model, conv, head, f"darknet weights {weights_path}")
    return header


def _get_layer(model, name, where):
    try:
        return model.get_layer(name)
    except ValueError:
        raise BackboneError(f"{where} do not fit model {model.name!r}: it has no layer {name!r}") from None


def _load_conv(model, conv, head, where):
    spec: ConvSpec = conv.spec
    layer = _get_layer(model, f"conv_{spec.index}", where)
    kernel = conv.kernel.transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)
    current = layer.get_weights()
    if tuple(current[0].shape) != kernel.shape:
        if head is None or spec.batch_normalize or current[0].shape[:3] != kernel.shape[:3]:
            raise BackboneError(f"{where} do not fit model {model.name!r}: layer conv_{spec.index} has a kernel of "
                                f"shape {tuple(current[0].shape)}, the file {kernel.shape}")
        kernel, bias = _box_channels(current, kernel, conv.bias, len(_head_mask(head)), spec, model, where)
        layer.set_weights([kernel, bias])
        return
    if spec.batch_normalize:
        layer.set_weights([kernel])
        bn = _get_layer(model, f"bn_{spec.index}", where)
        bn.set_weights([conv.gamma, conv.beta, conv.mean, conv.variance])
    else:
        layer.set_weights([kernel, conv.bias])


def _box_channels(current, kernel, bias, anchors, spec, model, where):
    """The model's head kernel and bias with each anchor's 5 box and objectness channels from the file."""
    new_kernel, new_bias = current
    old_width, new_width = kernel.shape[-1] // anchors, new_kernel.shape[-1] // anchors
    if kernel.shape[-1] % anchors or new_kernel.shape[-1] % anchors or min(old_width, new_width) < 5:
        raise BackboneError(f"{where} do not fit model {model.name!r}: head convolution conv_{spec.index} has "
                            f"{new_kernel.shape[-1]} filters, the file {kernel.shape[-1]}, for {anchors} anchors")
    new_kernel, new_bias = new_kernel.copy(), new_bias.copy()
    for a in range(anchors):
        new_kernel[..., a * new_width:a * new_width + 5] = kernel[..., a * old_width:a * old_width + 5]
        new_bias[a * new_width:a * new_width + 5] = bias[a * old_width:a * old_width + 5]
    return new_kernel, new_bias


def build_yolov4_tiny(num_classes=80, input_size=416, weights=None, cfg_path=None, name="yolov4_tiny"):
    """YOLOv4-tiny: pixels (input_size, input_size, 3) in [0, 255] -> raw outputs of its two heads
    (13x13 and 26x26 grids at 416). `weights`: a darknet yolov4-tiny.weights path (COCO), loaded whole
    for 80 classes, or all but the heads' class channels for another `num_classes`. `cfg_path`: build
    from a darknet cfg file instead of the cfg written here (the same network)."""
    if input_size % 32:
        raise BackboneError(f"YOLOv4-tiny needs an input size that is a multiple of 32; got {input_size}")
    if num_classes < 1:
        raise BackboneError(f"num_classes must be at least 1; got {num_classes}")
    sections = parse_darknet_cfg(cfg_path) if cfg_path else yolov4_tiny_sections()
    model = build_darknet(sections, input_size, num_classes, name=name)
    if weights:
        load_darknet_weights(model, Path(weights), cfg_path)
    return model


__all__ = ["BN_EPSILON", "LEAKY_SLOPE", "YOLOV4_TINY_STRIDES", "Section", "build_darknet", "build_yolov4_tiny",
           "head_convolutions", "load_darknet_weights", "yolov4_tiny_heads", "yolov4_tiny_sections"]
