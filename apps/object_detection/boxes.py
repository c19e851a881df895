"""Anchors, box encoding against them, and decoding with per-class NMS: the detector's box arithmetic.

Anchors come from keras-hub's AnchorGenerator, matching from its BoxMatcher and the delta
encoding from Keras' bounding-box utilities. keras-hub's NonMaxSuppression layer suppresses
across classes (one NMS over each anchor's best class), so per-class NMS uses TensorFlow's
combined_non_max_suppression instead (data.boxes.geometry.per_class_nms).
"""
import dataclasses

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from data.boxes.geometry import per_class_nms

VARIANCE = [0.1, 0.1, 0.2, 0.2]  # the usual scaling of (dy, dx, dh, dw) targets to unit size
BACKGROUND, IGNORE = -1, -2


def aspect_ratios(text):
    try:
        ratios = [float(r) for r in text.split(",")]
    except ValueError:
        ratios = []
    if not ratios or min(ratios) <= 0:
        raise ValueError(f"model.aspect_ratios must be positive numbers separated by commas, got {text!r}")
    return ratios


def ratios_text(ratios):
    """Aspect ratios as --model.aspect_ratios takes them: "0.5,1,2"."""
    return ",".join(f"{r:g}" for r in ratios)


@dataclasses.dataclass(frozen=True)
class Anchors:
    """The anchor settings a run may fit to its data (anchor_fit.py); the levels and the number of scales
    are the model's structure and stay as configured."""

    size: float  # anchor side at scale 1 = size * 2**level pixels
    ratios: tuple  # height / width

    @classmethod
    def configured(cls, m):
        """The anchors of a DetectorConfig's flags."""
        return cls(float(m.anchor_size), tuple(aspect_ratios(m.aspect_ratios)))

    def describe(self):
        return f"anchor_size {self.size:g}, aspect_ratios {ratios_text(self.ratios)}"


class BoxCoder:
    """The anchors of one square canvas size and the encoding of boxes relative to them.

    Anchors are yxyx canvas pixels, level by level (min_level first), each cell's anchors
    together: the order in which the model's heads emit their predictions.
    """

    def __init__(self, size, min_level=3, max_level=5, num_scales=3, ratios=(0.5, 1.0, 2.0), anchor_size=2.0,
                 positive_iou=0.5, negative_iou=0.4):
        generator = keras_hub.layers.AnchorGenerator("yxyx", min_level, max_level, num_scales, list(ratios), anchor_size)
        with tf.init_scope():  # eager, even when first used inside a traced function
            levels = generator(np.zeros((size, size, 3), np.float32))
            self.levels = {i: np.asarray(levels[f"P{i}"]) for i in range(min_level, max_level + 1)}
        self.anchors = np.concatenate(list(self.levels.values()))
        self.anchors_per_cell = num_scales * len(ratios)
        self.positive_iou = positive_iou
        self.matcher = keras_hub.layers.BoxMatcher([negative_iou, positive_iou], [BACKGROUND, IGNORE, 1],
                                                   force_match_for_each_col=True)

    @classmethod
    def from_config(cls, size, m, anchors=None):
        """The coder of a DetectorConfig, with `anchors` (an Anchors: fitted, or a run's record) instead of the
        configured anchor_size and aspect_ratios when given."""
        anchors = anchors or Anchors.configured(m)
        return cls(size, m.min_level, m.max_level, m.num_scales, anchors.ratios, anchors.size, m.positive_iou,
                   m.negative_iou)

    def encode(self, boxes, labels):
        """Padded boxes (b, m, 4) and labels (b, m) (-1: no box) -> targets (b, anchors, 5):
        box deltas and the class per anchor (>= 0, BACKGROUND or IGNORE)."""
        boxes = tf.convert_to_tensor(boxes, tf.float32)
        labels = tf.convert_to_tensor(labels, tf.int32)
        iou = keras.utils.bounding_boxes.compute_iou(self.anchors, boxes, "yxyx")  # (b, anchors, m)
        iou = tf.where(labels[:, None, :] >= 0, iou, -1.0)  # padding matches nothing
        column, kind = self.matcher(iou)
        # BoxMatcher appends a column of -1s before its argmax; a forced match to it means no box.
        real = column < tf.shape(boxes)[1]
        column = tf.minimum(column, tf.shape(boxes)[1] - 1)
        matched_boxes = tf.gather(boxes, column, batch_dims=1)
        matched_labels = tf.where(real, tf.gather(labels, column, batch_dims=1), -1)
        classes = tf.where(tf.equal(kind, IGNORE), IGNORE, BACKGROUND)
        classes = tf.where(tf.equal(kind, 1) & (matched_labels >= 0), matched_labels, classes)
        deltas = keras.utils.bounding_boxes.encode_box_to_deltas(
            self.anchors, matched_boxes, anchor_format="yxyx", box_format="yxyx", variance=VARIANCE)
        deltas = tf.where(classes[..., None] >= 0, deltas, 0.0)  # padding's deltas are undefined
        return tf.concat([deltas, tf.cast(classes, tf.float32)[..., None]], axis=-1)

    @property
    def num_predictions(self):
        return len(self.anchors)

    def decode(self, deltas):
        """Predicted deltas (b, anchors, 4) -> yxyx canvas boxes."""
        return keras.utils.bounding_boxes.decode_deltas_to_boxes(
            self.anchors, deltas, anchor_format="yxyx", box_format="yxyx", variance=VARIANCE)

    def detect(self, predictions, score_threshold=0.05, iou_threshold=0.5, max_detections=100):
        """Raw model output (b, anchors, 4 + classes) -> per-class-NMS detections on the canvas:
        boxes (b, max_detections, 4) yxyx, scores, class ids (int32) and the count of valid rows."""
        boxes = self.decode(predictions[..., :4])
        scores = tf.sigmoid(predictions[..., 4:])
        return per_class_nms(boxes, scores, score_threshold, iou_threshold, max_detections)
