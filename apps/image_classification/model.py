"""Image classifiers: a zoo body or a pretrained backbone (apps/core/backbones.py) with a softmax head.

Every model takes float RGB/grey pixels in [0, 255] and returns class probabilities; input
scaling lives inside the model (a Normalization fitted on the training split, or the backbone's
own ImagePreprocess), so the exported model and `predict` share it.
"""
import keras

from apps.core.backbones import (ARCHS, PRETRAINED, SCRATCH, backbone_preprocessing, build_backbone, scratch_body,
                                 set_trainable_top)
from layers import ImagePreprocess

__all__ = ["ARCHS", "PRETRAINED", "SCRATCH", "build_classifier", "set_trainable_top"]
_INITIALIZERS = {"he": "he_normal", "xavier": "glorot_uniform"}


def build_classifier(cfg, input_shape, num_classes, norm_stats):
    """Build the model named by `cfg.arch` (a ModelConfig) for images of `input_shape`."""
    inputs = keras.Input(input_shape, name="image")
    if cfg.arch in SCRATCH:
        mean, var = norm_stats
        x = keras.layers.Normalization(mean=mean, variance=var, name="normalize")(inputs)
        x = scratch_body(cfg.arch, x, cfg, dict(use_bn=cfg.batch_norm, weight_decay=cfg.l2,
                                                kernel_initializer=_INITIALIZERS[cfg.init]))
    else:
        x = inputs if input_shape[-1] == 3 else keras.layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
        backbone = build_backbone(cfg.arch, (*input_shape[:2], 3), cfg.weights)
        x = ImagePreprocess(backbone_preprocessing(cfg.arch), name="preprocess")(x)
        x = backbone(x, training=False)  # BatchNorm stays in inference mode, frozen or not
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=cfg.arch)
