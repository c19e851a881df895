"""Focal loss over classes plus a box loss over the positive anchors (smooth L1 on the deltas, as RetinaNet,
or GIoU of the boxes they encode), normalised by the number of positive anchors: each image's own, or the batch's
(RetinaNet's sum over the batch / its positives, so a crowded image's objects weigh as much as a lone one's)."""
import keras
from keras import ops

from apps.object_detection.boxes import VARIANCE

GIOU_WEIGHT = 2.0  # against focal loss 1: mmdetection's RetinaNet-GIoU setting


def giou_of_deltas(true, pred):
    """GIoU of the boxes that two delta sets (..., 4: dy, dx, dh, dw) encode against the same anchor. Boxes
    are compared in the anchor's frame (its centre at 0, its sides 1): IoU and GIoU are ratios of areas
    of axis-aligned boxes, unchanged by a shift and a scaling per axis, so the anchor itself is not needed."""
    def corners(d):
        centre = d[..., :2] * ops.convert_to_tensor(VARIANCE[:2])
        half = ops.exp(ops.clip(d[..., 2:] * ops.convert_to_tensor(VARIANCE[2:]), -8.0, 8.0)) / 2
        return centre - half, centre + half

    (lo_t, hi_t), (lo_p, hi_p) = corners(true), corners(pred)
    area = lambda lo, hi: ops.prod(ops.maximum(hi - lo, 0.0), axis=-1)  # noqa: E731
    inter = area(ops.maximum(lo_t, lo_p), ops.minimum(hi_t, hi_p))
    union = area(lo_t, hi_t) + area(lo_p, hi_p) - inter
    enclosing = area(ops.minimum(lo_t, lo_p), ops.maximum(hi_t, hi_p))
    return inter / union - (enclosing - union) / enclosing


@keras.saving.register_keras_serializable(package="suite")
class DetectionLoss(keras.losses.Loss):
    """y_true (b, anchors, 5): box deltas and class (>= 0, -1 background, -2 ignored);
    y_pred (b, anchors, 4 + classes): box deltas and class logits."""

    PARTS = ("cls", "box")  # what parts() returns

    def __init__(self, num_classes, alpha=0.25, gamma=2.0, box_weight=1.0, box_loss="smooth_l1", normalizer="image",
                 name="detection_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.box_loss = box_loss
        self.alpha = alpha
        self.gamma = gamma
        self.box_weight = box_weight
        if normalizer not in ("image", "batch"):
            raise ValueError(f"normalizer must be 'image' or 'batch', got {normalizer!r}")
        self.normalizer = normalizer

    def parts(self, y_true, y_pred):
        """(classification, box) loss per image."""
        classes = y_true[..., 4]
        positive = ops.cast(classes >= 0, "float32")
        counted = ops.cast(classes > -2, "float32")  # ignored anchors add no classification loss
        positives = ops.sum(positive, axis=1)
        if self.normalizer == "batch":  # Keras' mean over the images of these = the batch's sum / its positives
            images = ops.cast(ops.shape(positives)[0], "float32")
            normaliser = ops.broadcast_to(ops.maximum(ops.sum(positives), 1.0) / images, ops.shape(positives))
        else:
            normaliser = ops.maximum(positives, 1.0)
        one_hot = ops.one_hot(ops.cast(ops.maximum(classes, 0.0), "int32"), self.num_classes) * positive[..., None]
        # keras' focal loss averages over classes; the detector's sums.
        focal = keras.losses.binary_focal_crossentropy(
            one_hot, y_pred[..., 4:], apply_class_balancing=True, alpha=self.alpha, gamma=self.gamma,
            from_logits=True) * self.num_classes
        if self.box_loss == "giou":
            box = GIOU_WEIGHT * (1.0 - giou_of_deltas(y_true[..., :4], y_pred[..., :4]))
        else:
            box = keras.losses.huber(y_true[..., :4], y_pred[..., :4], delta=1.0) * 4.0
        return (ops.sum(focal * counted, axis=1) / normaliser,
                self.box_weight * ops.sum(box * positive, axis=1) / normaliser)

    def call(self, y_true, y_pred):
        cls, box = self.parts(y_true, y_pred)
        return cls + box

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "alpha": self.alpha, "gamma": self.gamma,
                "box_weight": self.box_weight, "box_loss": self.box_loss, "normalizer": self.normalizer}


@keras.saving.register_keras_serializable(package="suite")
class LossPart(keras.metrics.Mean):
    """One part of a detection loss (a registered loss class with `PARTS` and `parts()`: DetectionLoss,
    yolo.YoloLoss), as a metric for the learning curves."""

    def __init__(self, part, loss_config, loss="DetectionLoss", name=None, **kwargs):
        super().__init__(name=name or f"{part}_loss", **kwargs)
        self.part = part
        self.loss_config = loss_config
        self.loss = loss
        self._loss = keras.saving.get_registered_object(f"suite>{loss}")(**loss_config)
        self._index = self._loss.PARTS.index(part)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self._loss.parts(y_true, y_pred)[self._index], sample_weight)

    def get_config(self):
        return {"part": self.part, "loss_config": self.loss_config, "loss": self.loss, "name": self.name}
