"""The embedding network: a suite backbone, global average pooling, a dense projection, L2 normalisation.

f(x) lies on the unit sphere, so the squared distance d(x1, x2) = ||f(x1) - f(x2)||^2 is in [0, 4] and a
triplet margin means the same on every data set. The model takes float RGB pixels 0..255 of size x size
and preprocesses them inside (exports carry it). With dlib's face ResNet and its weights, the projection
starts as dlib's own 256 -> 128 layer, so the untrained model already gives dlib's descriptors
(normalised). For the binary loss, a PairwiseLogits head on top turns a batch's embeddings into
same/different logits for every pair; `embedder_of` returns the embedding part for evaluation and export, and
`pair_head_weights` the head's weights, with which such a run compares two faces.

    >>> model = build_embedder(ModelConfig(backbone="resnet", width=8), size=64)
    >>> tuple(model(keras.ops.zeros((2, 64, 64, 3))).shape)
    (2, 128)
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from apps.core.config import field
from apps.core.finetune import FinetuneConfig
from backbones import BackboneOptions, backbone_names, build_backbone, get_backbone, preprocessing_layer
from layers import PairwiseLogits

# lenet5 ends in dense layers (fixed input size); the rest end in a feature map
BACKBONES = [name for name in backbone_names() if name != "lenet5"]
NATIVE_SIZE = {"dlib_face_resnet": 150}  # pretrained networks' own input sizes; the rest default to 96
EMBEDDING = "embedding"
PAIR_LOGITS = "pair_logits"


@dataclasses.dataclass
class ModelConfig(FinetuneConfig):
    backbone: str = field("dlib_face_resnet", "embedding network's backbone (zoo or pretrained)", BACKBONES)
    embedding_dim: int = field(128, "size of the L2-normalised embedding", min=2)
    width: int = field(32, "zoo backbones: base channels", min=1)
    depth: int = field(2, "zoo backbones: blocks per stage", min=1)
    dropout: float = field(0.0, "dropout before the projection", min=0.0, max=1.0, max_exclusive=True)
    wise_ft: float = field(0.5, "with --model.weights: the fine-tuned weights' share of the saved model, the rest "
                                "the pretrained ones (WiSE-FT, Wortsman et al. 2022: the mix keeps what the pretrained "
                                "network knew about people it never saw; 0.5 is the paper's choice); 1: fine-tuned only",
                           min=0.0, max=1.0)

    def check(self, prefix=""):
        if self.weights and not get_backbone(self.backbone).pretrained:
            raise ValueError(f"config key '{prefix}weights' needs a pretrained '{prefix}backbone' "
                             f"({', '.join(backbone_names(pretrained=True))}); zoo networks train from scratch")


def native_size(cfg):
    return NATIVE_SIZE.get(cfg.backbone, 96)


def build_embedder(cfg, size, pair_head=False):
    """float RGB (size, size, 3) 0..255 -> unit embeddings (embedding_dim,) named "embedding";
    with `pair_head`, the model's output is instead the (B, B) same/different logits of PairwiseLogits."""
    inputs = keras.Input((size, size, 3), name="images")
    x = preprocessing_layer(cfg.backbone)(inputs)
    backbone = build_backbone(cfg.backbone, (size, size, 3), BackboneOptions(width=cfg.width, depth=cfg.depth), cfg.weights)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(x))
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    projection = keras.layers.Dense(cfg.embedding_dim, name="projection")
    x = projection(x)
    pretrained = getattr(backbone, "pretrained_projection", None)
    pretrained_layers = [backbone.name] if cfg.weights else []
    if pretrained is not None and tuple(pretrained[0].shape) == tuple(projection.kernel.shape):
        projection.set_weights(pretrained)
        pretrained_layers.append(projection.name)
    embedding = keras.layers.UnitNormalization(name=EMBEDDING)(x)
    outputs = PairwiseLogits(name=PAIR_LOGITS)(embedding) if pair_head else embedding
    model = keras.Model(inputs, outputs, name="face_embedder")
    model.pretrained_layers = pretrained_layers  # the layers that start from pretrained weights (WiSE-FT mixes those)
    return model


def embedder_of(model, flip_test=False):
    """The part of `model` that maps images to embeddings (the model itself without a pair head). With
    `flip_test`, each face and its mirror image go through it and the result is their normalised mean (the
    "flip test" of face-recognition evaluation): an embedding that a left-right mirror does not change, for
    twice the network's work."""
    embedder = model
    if not (model.output.name and model.get_layer(EMBEDDING).output is model.output):
        embedder = keras.Model(model.input, model.get_layer(EMBEDDING).output, name="face_embedder")
    if not flip_test:
        return embedder
    images = keras.Input(embedder.input_shape[1:], name="images")
    mirrored = keras.ops.flip(images, axis=2)  # (batch, height, width, channels): left-right
    both = keras.layers.Add(name="flip_sum")([embedder(images), embedder(mirrored)])
    return keras.Model(images, keras.layers.UnitNormalization(name=EMBEDDING)(both), name="flip_test_embedder")


def pair_head_weights(model):
    """(w, b) as float64 NumPy of a binary run's PairwiseLogits head, which compares two embeddings by the logit
    w . |e_a - e_b| + b it was trained to give: evaluate, calibrate, predict and the export's verify score pairs
    with it (verification.pair_distances); None for the other losses (squared Euclidean distance)."""
    try:
        head = model.get_layer(PAIR_LOGITS)
    except ValueError:
        return None
    kernel, *bias = head.dense.get_weights()
    return kernel[:, 0].astype(np.float64), float(bias[0][0]) if bias else 0.0


def embedding_function(model, flip_test=False, batch_size=64):
    """images (n, size, size, 3) uint8 or float -> their embeddings as float32 NumPy (n, dim), through a
    tf.function over batches of `batch_size` (evaluation, predict, the benchmark); `flip_test` as embedder_of."""
    embedder = embedder_of(model, flip_test)
    run = tf.function(lambda x: embedder(x, training=False), reduce_retracing=True)

    def embed(images):
        if not len(images):
            return np.zeros((0, embedder.output_shape[-1]), np.float32)
        return np.concatenate([run(tf.cast(images[i:i + batch_size], tf.float32)).numpy()
                               for i in range(0, len(images), batch_size)])
    return embed
