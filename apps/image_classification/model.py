"""Image classifiers: a backbone of the suite (zoo or pretrained, see backbones/) with a softmax head.

Every model takes float RGB/grey pixels in [0, 255] and returns class probabilities; input
scaling lives inside the model (a Normalization fitted on the training split for zoo networks,
the backbone's own preprocessing for pretrained ones), so the exported model and `predict` share it.
"""
import keras

from backbones import BackboneOptions, build_backbone, get_backbone, preprocessing_layer


def build_classifier(cfg, input_shape, num_classes, norm_stats):
    """Build the model named by `cfg.arch` (a ModelConfig) for images of `input_shape`."""
    spec = get_backbone(cfg.arch)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if spec.pretrained and input_shape[-1] != 3:
        x = keras.layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
    x = preprocessing_layer(cfg.arch, norm_stats)(x)
    options = BackboneOptions(width=cfg.width, depth=cfg.depth, bottleneck=cfg.bottleneck, batch_norm=cfg.batch_norm,
                              init=cfg.init, l2=cfg.l2)
    backbone = build_backbone(cfg.arch, x.shape[1:], options, cfg.weights)
    # Loaded weights keep their BatchNorm statistics (inference mode, frozen or not); a network
    # trained from scratch needs its BatchNorm in training mode to learn at all.
    x = backbone(x, training=False) if cfg.weights else backbone(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=cfg.arch)
