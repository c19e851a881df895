"""Focal loss over classes plus smooth-L1 over the positive anchors' box deltas, per image
normalised by its number of positive anchors (RetinaNet)."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="suite")
class DetectionLoss(keras.losses.Loss):
    """y_true (b, anchors, 5): box deltas and class (>= 0, -1 background, -2 ignored);
    y_pred (b, anchors, 4 + classes): box deltas and class logits."""

    def __init__(self, num_classes, alpha=0.25, gamma=2.0, box_weight=1.0, name="detection_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.alpha = alpha
        self.gamma = gamma
        self.box_weight = box_weight

    def parts(self, y_true, y_pred):
        """(classification, box) loss per image."""
        classes = y_true[..., 4]
        positive = ops.cast(classes >= 0, "float32")
        counted = ops.cast(classes > -2, "float32")  # ignored anchors add no classification loss
        normaliser = ops.maximum(ops.sum(positive, axis=1), 1.0)
        one_hot = ops.one_hot(ops.cast(ops.maximum(classes, 0.0), "int32"), self.num_classes) * positive[..., None]
        # keras' focal loss averages over classes; the detector's sums.
        focal = keras.losses.binary_focal_crossentropy(
            one_hot, y_pred[..., 4:], apply_class_balancing=True, alpha=self.alpha, gamma=self.gamma,
            from_logits=True) * self.num_classes
        box = keras.losses.huber(y_true[..., :4], y_pred[..., :4], delta=1.0) * 4.0
        return (ops.sum(focal * counted, axis=1) / normaliser,
                self.box_weight * ops.sum(box * positive, axis=1) / normaliser)

    def call(self, y_true, y_pred):
        cls, box = self.parts(y_true, y_pred)
        return cls + box

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "alpha": self.alpha, "gamma": self.gamma,
                "box_weight": self.box_weight}


@keras.saving.register_keras_serializable(package="suite")
class LossPart(keras.metrics.Mean):
    """The classification or the box part of a DetectionLoss, as a metric for the learning curves."""

    def __init__(self, part, loss_config, name=None, **kwargs):
        super().__init__(name=name or f"{part}_loss", **kwargs)
        self.part = part
        self.loss_config = loss_config
        self._loss = DetectionLoss(**loss_config)

    def update_state(self, y_true, y_pred, sample_weight=None):
        cls, box = self._loss.parts(y_true, y_pred)
        return super().update_state(cls if self.part == "cls" else box, sample_weight)

    def get_config(self):
        return {"part": self.part, "loss_config": self.loss_config, "name": self.name}
