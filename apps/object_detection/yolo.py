"""The YOLO architecture of the app (--model.arch yolo): YOLOv4-tiny (backbones.darknet), fine-tuned from
darknet's COCO weights on the user's classes, with its box assignment, loss and decoding.

The model's output is every head's raw map flattened to one tensor (b, N, 5 + classes), head after head,
each head's cells row by row and each cell's anchors in turn (backbones.yolo_decode's order), so the
app's training, evaluation and export treat both architectures alike. Targets (YoloCoder.encode):
each box goes to the cell holding its centre, at the one anchor (of every head's) whose shape fits it
best, as darknet's yolov4-tiny.cfg does (iou_thresh unset). The loss (YoloLoss) is Ultralytics YOLOv5's:
1 - CIoU on the positives, objectness BCE over all predictions with the positives' target their CIoU
(so the score also says how well a box fits), class BCE on the positives. One departure from darknet:
predictions that are not positives but whose prior box (the anchor on its cell) overlaps a box by
model.negative_iou or more are left out of the objectness loss, where darknet leaves out those whose
*predicted* box overlaps one by 0.7; the static rule needs no boxes inside the loss.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from apps.core.errors import UserError
from apps.object_detection.boxes import BACKGROUND, IGNORE
from backbones.darknet import build_yolov4_tiny, head_convolutions, yolov4_tiny_heads, yolov4_tiny_sections
from backbones.registry import BackboneError
from backbones.yolo_decode import decode_yolo
from data.boxes.geometry import per_class_nms

# Ultralytics YOLOv5's loss gains (hyp.scratch-low.yaml: box 0.05, obj 1.0, cls 0.5), which it tunes
# by evolution over many data sets; scaled here for two heads as it scales them (box x 3 / heads).
BOX_GAIN, OBJ_GAIN, CLS_GAIN = 0.05 * 3 / 2, 1.0, 0.5
COCO_HINT = ("YOLOv4-tiny's COCO weights are not shipped with the suite (24 MB); download yolov4-tiny.weights "
             "(darknet's releases: github.com/AlexeyAB/darknet/releases) and pass its path: --model.weights "
             "/path/to/yolov4-tiny.weights")


def build_yolo_detector(cfg, size, num_classes):
    """YOLOv4-tiny on a size x size canvas of pixels 0..255, its output flattened to (b, N, 5 + classes).
    With cfg.weights (a darknet .weights file) all but the heads' class channels start from it, and its
    batch statistics stay as trained (called with training=False). The network is the sub-model "backbone",
    which fine-tuning's phases (apps.core.finetune) freeze and unfreeze."""
    weights = cfg.weights
    if weights and str(weights).lower() in ("coco", "imagenet"):
        raise UserError(COCO_HINT)
    try:
        darknet = build_yolov4_tiny(num_classes, size, weights, name="backbone")
    except BackboneError as e:
        raise UserError(str(e)) from None
    inputs = keras.Input((size, size, 3), name="image")
    outputs = darknet(inputs, training=False) if weights else darknet(inputs)
    flat = [keras.layers.Reshape((-1, 5 + num_classes), name=f"flat_{head.name}")(o)
            for o, head in zip(outputs, darknet.yolo_heads)]
    predictions = keras.layers.Concatenate(axis=1, name="predictions", dtype="float32")(flat)
    return keras.Model(inputs, predictions, name="yolov4_tiny_detector")


def train_only_heads(model):
    """The frozen phase of fine-tuning: only the convolutions before the heads (new class channels) train."""
    heads = set(head_convolutions(yolov4_tiny_sections()))
    for layer in model.get_layer("backbone").layers:
        layer.trainable = layer.name in heads


class YoloCoder:
    """The prediction slots of YOLOv4-tiny on one square canvas size: their cell, stride and anchor; the
    encoding of boxes as per-slot targets, and the decoding of predictions to detections.

    A target row is (x, y) of the box centre within its cell (0..1), the box's (w, h) and the slot anchor's
    (w, h) in strides, and the class (>= 0 positive, BACKGROUND, or IGNORE for the objectness loss)."""

    def __init__(self, size, negative_iou=0.4):
        self.size = size
        self.heads = yolov4_tiny_heads()  # its class count is the model's, read from its output in detect()
        self.grids = [size // stride for _, stride in self.heads]
        rows = []
        for (head, stride), grid in zip(self.heads, self.grids):
            r, c, a = np.meshgrid(np.arange(grid), np.arange(grid), np.arange(head.num_anchors), indexing="ij")
            wh = np.asarray(head.anchors, np.float32)[a.ravel()]
            rows.append(np.column_stack([r.ravel(), c.ravel(), np.full(r.size, stride), wh]))
        slots = np.concatenate(rows).astype(np.float32)  # (N, 5): row, col, stride, anchor w, h (pixels)
        self.slots = slots
        cy, cx = (slots[:, 0] + 0.5) * slots[:, 2], (slots[:, 1] + 0.5) * slots[:, 2]
        self.anchors = np.stack([cy - slots[:, 4] / 2, cx - slots[:, 3] / 2, cy + slots[:, 4] / 2,
                                 cx + slots[:, 3] / 2], -1)  # prior boxes, yxyx: for the ignore rule
        # every head's anchor shapes in turn (a shape two heads share appears twice), each with its head and
        # its index there, and where each head's slots start: the box-to-anchor assignment
        self.shapes = np.concatenate([np.asarray(h.anchors, np.float32) for h, _ in self.heads])
        self.shape_head = np.concatenate([[i] * h.num_anchors for i, (h, _) in enumerate(self.heads)])
        self.shape_index = np.concatenate([np.arange(h.num_anchors) for h, _ in self.heads]).astype(np.int32)
        sizes = [g * g * h.num_anchors for (h, _), g in zip(self.heads, self.grids)]
        self.head_start = np.cumsum([0] + sizes)[:-1].astype(np.int32)
        self.negative_iou = negative_iou
        self.scale_x_y = self.heads[0][0].scale_x_y  # one for all heads (1.05 in yolov4-tiny): the loss takes one

    @property
    def num_predictions(self):
        return len(self.slots)

    def encode(self, boxes, labels):
        """Padded canvas boxes (b, m, 4) yxyx and labels (b, m) (-1: no box) -> targets (b, N, 7)."""
        boxes = tf.convert_to_tensor(boxes, tf.float32)
        labels = tf.convert_to_tensor(labels, tf.int32)
        real = labels >= 0
        h = tf.maximum(boxes[..., 2] - boxes[..., 0], 1e-3)
        w = tf.maximum(boxes[..., 3] - boxes[..., 1], 1e-3)
        cy, cx = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
        shapes = tf.constant(self.shapes)
        inter = tf.minimum(w[..., None], shapes[:, 0]) * tf.minimum(h[..., None], shapes[:, 1])
        shape_iou = inter / (w[..., None] * h[..., None] + shapes[:, 0] * shapes[:, 1] - inter)  # (b, m, K)
        # the best shape, at every head that has it (yolov4-tiny's 81x82 anchor is in both, as in darknet)
        chosen = (shape_iou >= tf.reduce_max(shape_iou, -1, keepdims=True)) & real[..., None]  # (b, m, K)
        stride = tf.constant([self.heads[k][1] for k in self.shape_head], tf.float32)  # per shape (K,)
        grid = tf.constant([self.grids[k] for k in self.shape_head], tf.int32)
        row = tf.clip_by_value(tf.cast(tf.floor(cy[..., None] / stride), tf.int32), 0, grid - 1)
        col = tf.clip_by_value(tf.cast(tf.floor(cx[..., None] / stride), tf.int32), 0, grid - 1)
        per_cell = tf.constant([self.heads[k][0].num_anchors for k in self.shape_head], tf.int32)
        slot = tf.constant(self.head_start[self.shape_head], tf.int32) + (row * grid + col) * per_cell + self.shape_index
        # one box per slot: where two claim one, the better-fitting shape wins (then the later box)
        claim = tf.reduce_max(tf.one_hot(slot, self.num_predictions) * tf.cast(chosen, tf.float32)[..., None], 2)
        priority = claim * (1.0 + tf.reduce_max(shape_iou, -1))[..., None]  # (b, m, N)
        owner = tf.argmax(priority, axis=1, output_type=tf.int32)  # (b, N)
        positive = tf.reduce_max(claim, axis=1) > 0
        g = lambda t: tf.gather(t, owner, batch_dims=1)  # noqa: E731 - the owning box's value per slot
        s = tf.constant(self.slots)
        targets = tf.stack([g(cx) / s[:, 2] - s[:, 1], g(cy) / s[:, 2] - s[:, 0], g(w) / s[:, 2], g(h) / s[:, 2],
                            tf.broadcast_to(s[:, 3] / s[:, 2], tf.shape(owner)),
                            tf.broadcast_to(s[:, 4] / s[:, 2], tf.shape(owner))], -1)
        iou = keras.utils.bounding_boxes.compute_iou(self.anchors, boxes, "yxyx")  # (b, N, m)
        near = tf.reduce_max(tf.where(real[:, None, :], iou, -1.0), axis=-1) >= self.negative_iou
        classes = tf.where(positive, g(labels), tf.where(near, IGNORE, BACKGROUND))
        targets = tf.where(positive[..., None], targets, tf.concat([tf.zeros_like(targets[..., :4]),
                                                                    targets[..., 4:]], -1))
        return tf.concat([targets, tf.cast(classes, tf.float32)[..., None]], -1)

    def detect(self, predictions, score_threshold=0.05, iou_threshold=0.5, max_detections=100):
        """Raw output (b, N, 5 + classes) -> per-class-NMS detections on the canvas, as boxes.detect."""
        maps, start = [], 0
        for (head, _), grid in zip(self.heads, self.grids):
            n = grid * grid * head.num_anchors
            part = predictions[:, start:start + n]
            maps.append(tf.reshape(part, [-1, grid, grid, head.num_anchors * tf.shape(part)[-1]]))
            start += n
        classes = predictions.shape[-1] - 5
        heads = [dataclasses.replace(head, num_classes=classes) for head, _ in self.heads]
        boxes, objectness, class_probs = decode_yolo(maps, heads, (self.size, self.size))
        return per_class_nms(boxes, objectness[..., None] * class_probs, score_threshold, iou_threshold,
                             max_detections)


@keras.saving.register_keras_serializable(package="suite")
class YoloLoss(keras.losses.Loss):
    """y_true (b, N, 7) from YoloCoder.encode; y_pred (b, N, 5 + classes) raw. Per image:
    BOX_GAIN * mean over positives of (1 - CIoU) + OBJ_GAIN * mean over counted predictions of the
    objectness BCE + CLS_GAIN * mean over positives and classes of the class BCE."""

    PARTS = ("box", "obj", "cls")  # what parts() returns

    def __init__(self, num_classes, scale_x_y=1.05, name="yolo_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.scale_x_y = scale_x_y

    def parts(self, y_true, y_pred):
        """(box, objectness, class) loss per image."""
        classes = y_true[..., 6]
        positive = ops.cast(classes >= 0, "float32")
        counted = ops.cast(classes > IGNORE, "float32")
        n_pos = ops.maximum(ops.sum(positive, axis=1), 1.0)
        s = self.scale_x_y
        xy = ops.sigmoid(y_pred[..., :2]) * s - (s - 1) / 2
        wh = ops.exp(ops.clip(y_pred[..., 2:4], -10.0, 10.0)) * y_true[..., 4:6]
        true_wh = ops.maximum(y_true[..., 2:4], 1e-6)
        pred_box = ops.concatenate([xy[..., ::-1] - wh[..., ::-1] / 2, xy[..., ::-1] + wh[..., ::-1] / 2], -1)
        true_box = ops.concatenate([y_true[..., 1::-1] - true_wh[..., ::-1] / 2,
                                    y_true[..., 1::-1] + true_wh[..., ::-1] / 2], -1)
        ciou = keras.utils.bounding_boxes.compute_ciou(true_box, pred_box, "yxyx")
        box = ops.sum((1.0 - ciou) * positive, axis=1) / n_pos
        obj_target = positive * ops.stop_gradient(ops.maximum(ciou, 0.0))
        obj = keras.losses.binary_crossentropy(obj_target[..., None], y_pred[..., 4:5], from_logits=True)
        obj = ops.sum(obj * counted, axis=1) / ops.maximum(ops.sum(counted, axis=1), 1.0)
        one_hot = ops.one_hot(ops.cast(ops.maximum(classes, 0.0), "int32"), self.num_classes)
        cls = keras.losses.binary_crossentropy(one_hot, y_pred[..., 5:], from_logits=True)  # mean over classes
        cls = ops.sum(cls * positive, axis=1) / n_pos
        return BOX_GAIN * box, OBJ_GAIN * obj, CLS_GAIN * cls

    def call(self, y_true, y_pred):
        box, obj, cls = self.parts(y_true, y_pred)
        return box + obj + cls

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "scale_x_y": self.scale_x_y}
