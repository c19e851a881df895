"""Per-pixel losses for segmentation logits that skip the ignore label (255: VOC borders, crop padding).

- SegmentationCrossEntropy: sparse categorical cross-entropy from logits, optional per-class weights;
  sum(w[y] * nll) / sum(w[y]) over the pixels that are not ignored (PyTorch's CrossEntropyLoss(weight=,
  ignore_index=) convention: without weights, the plain mean over those pixels; with them, only the
  ratios of the weights matter, so the loss keeps its scale).
- SegmentationDice: `keras.losses.dice` between softmax probabilities and one-hot truth, both zero on
  ignored pixels, per class over the whole batch ("batch Dice": a class absent from one small crop does
  not count as a miss), averaged over the classes present in the batch's truth (an absent class has no
  overlap to score; predicting it is still penalised through the present classes' overlap).
- SegmentationCrossEntropyDice: their sum.

`y_true` is int class ids [B, H, W] (or [B, H, W, 1]); `y_pred` logits [B, H, W, C]. Each loss is
a scalar, registered as "suite>..." for saved models.

    loss = make_loss("cross_entropy+dice", class_weights=[0.5, 2.0])
    value = loss(masks, logits)
"""
import keras
from keras import ops

IGNORE_LABEL = 255


def _labels(y_true, num_classes, ignore_label):
    """(ids [B, H, W] with ignored pixels set to 0, float mask [B, H, W] of the pixels that count)."""
    y_true = ops.cast(y_true, "int32")
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, -1)
    valid = ops.not_equal(y_true, ignore_label)
    return ops.where(valid, y_true, 0), ops.cast(valid, "float32")


@keras.saving.register_keras_serializable(package="suite")
class SegmentationCrossEntropy(keras.losses.Loss):
    def __init__(self, ignore_label=IGNORE_LABEL, class_weights=None, name="segmentation_cross_entropy",
                 reduction="sum", **kwargs):
        # `reduction` is a parameter because get_config saves it: the call already returns the mean
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.ignore_label = int(ignore_label)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        ids, valid = _labels(y_true, logits.shape[-1], self.ignore_label)
        log_p = ops.log_softmax(logits, axis=-1)
        nll = -ops.squeeze(ops.take_along_axis(log_p, ids[..., None], axis=-1), -1)
        weight = valid
        if self.class_weights is not None:
            if len(self.class_weights) != logits.shape[-1]:
                raise ValueError(f"{len(self.class_weights)} class weights for {logits.shape[-1]} classes")
            weight = weight * ops.take(ops.convert_to_tensor(self.class_weights, "float32"), ids)
        return ops.sum(weight * nll) / ops.maximum(ops.sum(weight), 1e-12)

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label, "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="suite")
class SegmentationDice(keras.losses.Loss):
    def __init__(self, ignore_label=IGNORE_LABEL, name="segmentation_dice", reduction="sum", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        num_classes = logits.shape[-1]
        ids, valid = _labels(y_true, num_classes, self.ignore_label)
        truth = ops.one_hot(ids, num_classes) * valid[..., None]
        probs = ops.softmax(logits, axis=-1) * valid[..., None]
        per_class = keras.losses.dice(truth, probs, axis=(0, 1, 2))  # [C]: 1 - 2|T.P| / (|T| + |P|)
        present = ops.cast(ops.sum(truth, axis=(0, 1, 2)) > 0, "float32")
        return ops.sum(per_class * present) / ops.maximum(ops.sum(present), 1.0)

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label}


@keras.saving.register_keras_serializable(package="suite")
class SegmentationCrossEntropyDice(keras.losses.Loss):
    def __init__(self, ignore_label=IGNORE_LABEL, class_weights=None, name="segmentation_cross_entropy_dice",
                 reduction="sum", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.ignore_label = int(ignore_label)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.cross_entropy = SegmentationCrossEntropy(ignore_label, class_weights)
        self.dice = SegmentationDice(ignore_label)

    def call(self, y_true, y_pred):
        return self.cross_entropy.call(y_true, y_pred) + self.dice.call(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label, "class_weights": self.class_weights}


LOSSES = {"cross_entropy": SegmentationCrossEntropy, "dice": SegmentationDice,
          "cross_entropy+dice": SegmentationCrossEntropyDice}


def make_loss(name, class_weights=None, ignore_label=IGNORE_LABEL):
    """The loss called `name` (a key of LOSSES); class weights apply to the cross-entropy term."""
    if name not in LOSSES:
        raise ValueError(f"unknown segmentation loss {name!r}; choose one of {', '.join(LOSSES)}")
    if name == "dice":
        if class_weights is not None:
            raise ValueError("class weights apply to the cross-entropy; the Dice loss weighs every present class alike")
        return SegmentationDice(ignore_label)
    return LOSSES[name](ignore_label, class_weights)
