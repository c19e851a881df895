"""The detector: backbone levels -> feature pyramid -> shared box and class heads (RetinaNet layout).

Why not keras-hub's RetinaNetObjectDetector: its pyramid and heads are fixed at 256 channels
(about 10 GFLOP per 256x256 image for the stride-8 heads alone: hours per epoch on 2 cores) and
its backbone must be a keras-hub FeaturePyramidBackbone. This one keeps its layout at a chosen
width over any backbone of the suite, and uses keras-hub's anchors, matcher and Keras' box codec
(see boxes.py). The output is one tensor (batch, anchors, 4 + classes): box deltas, class logits.
"""
import math

import keras

from apps.core.backbones import PRETRAINED, backbone_preprocessing, build_backbone, scratch_body
from apps.core.errors import UserError
from layers import ConvBNAct, ImagePreprocess

PRIOR = 0.01  # initial foreground probability of every anchor (focal-loss paper)


def build_detector(cfg, size, num_classes, anchors_per_cell):
    """`cfg` is a DetectorConfig; the model takes float RGB pixels 0..255 on a size x size canvas."""
    inputs = keras.Input((size, size, 3), name="image")
    levels = backbone_levels(cfg, inputs, size)
    pyramid = feature_pyramid(levels, cfg, size)
    outputs = heads(pyramid, cfg, num_classes, anchors_per_cell)
    return keras.Model(inputs, outputs, name=f"detector_{cfg.backbone}")


def backbone_levels(cfg, inputs, size):
    """{level: feature map} of the backbone, one per stride 2**level: the last layer at each size."""
    if cfg.backbone in PRETRAINED:
        x = ImagePreprocess(backbone_preprocessing(cfg.backbone), name="preprocess")(inputs)
        base = build_backbone(cfg.backbone, (size, size, 3), cfg.weights)
    else:
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
        image = keras.Input((size, size, 3))
        # A stride-4 stem, so the zoo's three stages give strides 4, 8 and 16.
        y = ConvBNAct(cfg.width // 2, 3, strides=2, name="stem_s2")(image)
        y = ConvBNAct(cfg.width, 3, strides=2, name="stem_s4")(y)
        base = keras.Model(image, scratch_body(cfg.backbone, y, cfg, {}), name="backbone_body")
    by_level = {}
    for layer in base.layers[1:]:  # after the input layer
        shape = layer.output.shape if not isinstance(layer.output, (list, tuple)) else None
        if shape is not None and len(shape) == 4 and shape[1]:
            by_level[round(math.log2(size / shape[1]))] = layer.output
    wanted = {lv: t for lv, t in by_level.items() if cfg.min_level <= lv <= cfg.max_level}
    if cfg.min_level not in wanted:
        raise UserError(f"backbone {cfg.backbone} gives no stride-{2 ** cfg.min_level} features at image size {size} "
                        f"(it has levels {sorted(by_level)}); change model.min_level or data.image_size")
    features = keras.Model(base.inputs, [wanted[lv] for lv in sorted(wanted)], name="backbone")
    outputs = features(x, training=False) if cfg.backbone in PRETRAINED else features(x)
    return dict(zip(sorted(wanted), outputs if isinstance(outputs, list) else [outputs]))


def feature_pyramid(levels, cfg, size):
    """Top-down pyramid with lateral 1x1 convs and 3x3 smoothing; extra levels by stride-2 convs."""
    width, top = cfg.fpn_width, max(levels)
    lateral = {}
    for lv, x in levels.items():
        grid = math.ceil(size / 2**lv)
        if x.shape[1] != grid:  # valid-padding backbones (squeezenet) are a pixel short
            x = keras.layers.Resizing(grid, grid, name=f"align_c{lv}")(x)
        lateral[lv] = keras.layers.Conv2D(width, 1, name=f"lateral_c{lv}")(x)
    pyramid = {top: lateral[top]}
    for lv in sorted(levels, reverse=True)[1:]:
        up = keras.layers.UpSampling2D(2, name=f"upsample_p{lv + 1}")(pyramid[lv + 1])
        pyramid[lv] = keras.layers.Add(name=f"merge_p{lv}")([lateral[lv], up])
    for lv in list(pyramid):
        pyramid[lv] = keras.layers.Conv2D(width, 3, padding="same", name=f"smooth_p{lv}")(pyramid[lv])
    x = levels[top]
    for lv in range(top + 1, cfg.max_level + 1):
        if lv > top + 1:
            x = keras.layers.ReLU(name=f"relu_p{lv - 1}")(x)
        x = pyramid[lv] = keras.layers.Conv2D(width, 3, strides=2, padding="same", name=f"extra_p{lv}")(x)
    return pyramid


def heads(pyramid, cfg, num_classes, anchors_per_cell):
    """Box and class heads, each shared by every level, concatenated over anchors."""
    init = keras.initializers.RandomNormal(stddev=0.01)

    def tower(name, outputs, bias):
        layers = [keras.layers.Conv2D(cfg.head_width, 3, padding="same", activation="relu", kernel_initializer=init,
                                      name=f"{name}_conv{i + 1}") for i in range(cfg.head_depth)]
        layers.append(keras.layers.Conv2D(outputs, 3, padding="same", kernel_initializer=init, bias_initializer=bias,
                                          name=f"{name}_out"))
        return layers

    box_tower = tower("box", 4 * anchors_per_cell, "zeros")
    cls_tower = tower("cls", num_classes * anchors_per_cell, keras.initializers.Constant(-math.log((1 - PRIOR) / PRIOR)))
    boxes, logits = [], []
    for lv in sorted(pyramid):
        b = c = pyramid[lv]
        for layer in box_tower:
            b = layer(b)
        for layer in cls_tower:
            c = layer(c)
        boxes.append(keras.layers.Reshape((-1, 4), name=f"boxes_p{lv}")(b))
        logits.append(keras.layers.Reshape((-1, num_classes), name=f"logits_p{lv}")(c))
    boxes = keras.layers.Concatenate(axis=1, name="boxes")(boxes)
    logits = keras.layers.Concatenate(axis=1, name="logits")(logits)
    return keras.layers.Concatenate(axis=-1, name="predictions", dtype="float32")([boxes, logits])
