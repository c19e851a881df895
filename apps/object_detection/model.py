"""The detector: backbone levels -> feature pyramid -> shared box and class heads (RetinaNet layout).

Why not keras-hub's RetinaNetObjectDetector: its pyramid and heads are fixed at 256 channels
(about 10 GFLOP per 256x256 image for the stride-8 heads alone: hours per epoch on 2 cores) and
its backbone must be a keras-hub FeaturePyramidBackbone. This one keeps its layout at a chosen
width over any backbone of the suite, and uses keras-hub's anchors, matcher and Keras' box codec
(see boxes.py). The output is one tensor (batch, anchors, 4 + classes): box deltas, class logits.
"""
import math

import keras

from apps.core.errors import UserError
from backbones import BackboneOptions, build_backbone, feature_pyramid, get_backbone, preprocessing_layer, pyramid_levels

PRIOR = 0.01  # initial foreground probability of every anchor (focal-loss paper)


def build_detector(cfg, size, num_classes, anchors_per_cell, any_size=False):
    """`cfg` is a DetectorConfig; the model takes float RGB pixels 0..255 on a size x size canvas (any_size:
    square canvases of any side, for multi-scale training; `size` then only checks the backbone)."""
    inputs = keras.Input((None, None, 3) if any_size else (size, size, 3), name="image")
    levels = backbone_levels(cfg, inputs, None if any_size else size)
    pyramid = feature_pyramid(levels, cfg.fpn_width, None if any_size else size, cfg.max_level)
    outputs = heads(pyramid, cfg, num_classes, anchors_per_cell)
    return keras.Model(inputs, outputs, name=f"detector_{cfg.backbone}")


def backbone_levels(cfg, inputs, size):
    """{level: feature map} for min_level..max_level, from the levels the backbone declares (size None: a
    backbone for any input size)."""
    spec = get_backbone(cfg.backbone)
    x = preprocessing_layer(cfg.backbone)(inputs)
    options = BackboneOptions(width=cfg.width, depth=cfg.depth, bottleneck=cfg.bottleneck, batch_norm=True,
                              stem_stride=1 if spec.pretrained else 4)  # zoo: strides 4, 8, 16 after a stride-4 stem
    base = build_backbone(cfg.backbone, (size, size, 3), options, cfg.weights)
    wanted = pyramid_levels(base, cfg.min_level, cfg.max_level)
    if cfg.min_level not in wanted:
        declared = ", ".join(sorted(base.pyramid_outputs, key=lambda k: int(k[1:])))
        raise UserError(f"backbone {cfg.backbone} gives no stride-{2 ** cfg.min_level} features (P{cfg.min_level}); "
                        f"it declares {declared or 'none'}; change model.min_level or model.backbone")
    features = keras.Model(base.input, [wanted[lv] for lv in sorted(wanted)], name="backbone")
    outputs = features(x, training=False) if cfg.weights else features(x)  # pretrained statistics stay
    return dict(zip(sorted(wanted), outputs if isinstance(outputs, list) else [outputs]))


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
