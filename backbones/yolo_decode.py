"""YOLO heads (v3/v4) decoded to boxes in graph ops: the grid, the anchors, objectness x class scores, NMS.

A head's raw output is a (b, S_h, S_w, A * (5 + C)) map: the image cut into an S_h x S_w grid, and
for each cell and each of the head's A anchors (tx, ty, tw, th, objectness, C class logits), the
anchors one after another along the channels (darknet's layout). YOLOv4 decodes a cell (col, row)
of an S_w-wide grid on a W x H network input as

    x = (sigmoid(tx) * s - (s - 1) / 2 + col) / S_w * W      (s: the head's scale_x_y; v3: s = 1)
    w = anchor_w * exp(tw)                                  (anchors in input pixels)

and likewise y, h; objectness and classes are independent sigmoids and a box's score for a class is
objectness x class probability. Boxes are yxyx pixels, as everywhere in the suite.

    >>> model = build_yolov4_tiny(weights="yolov4-tiny.weights")             # backbones.darknet
    >>> found = detect_image(model, pixels)                                   # uint8 (h, w, 3)
    >>> found["boxes"], found["scores"], found["classes"]                      # image pixels, yxyx
"""
import dataclasses

import numpy as np
import tensorflow as tf

from data.boxes.geometry import letterbox as suite_letterbox, per_class_nms


@dataclasses.dataclass(frozen=True)
class YoloHead:
    """One detection head: its anchors ((w, h) in network-input pixels), classes and scale_x_y."""

    anchors: tuple
    num_classes: int
    scale_x_y: float = 1.0
    name: str = "yolo"

    @property
    def num_anchors(self):
        return len(self.anchors)

    @property
    def channels(self):
        return self.num_anchors * (5 + self.num_classes)


def split_head(raw, head):
    """A raw head output (b, S_h, S_w, A * (5 + C)) -> (b, S_h, S_w, A, 5 + C)."""
    raw = tf.convert_to_tensor(raw, tf.float32)
    shape = tf.shape(raw)
    return tf.reshape(raw, [shape[0], shape[1], shape[2], head.num_anchors, 5 + head.num_classes])


def decode_yolo(outputs, heads, input_hw):
    """Raw head outputs (one per head, in the same order as `heads`) of a network on (H, W) inputs ->
    boxes (b, N, 4) yxyx input pixels, objectness (b, N) and class probabilities (b, N, C), the N
    predictions of every cell and anchor of every head, head after head."""
    in_h, in_w = (float(v) for v in input_hw)
    boxes, objectness, classes = [], [], []
    for raw, head in zip(outputs, heads):
        t = split_head(raw, head)
        shape = tf.shape(t)
        grid_h, grid_w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        s = float(head.scale_x_y)
        xy = tf.sigmoid(t[..., 0:2]) * s - 0.5 * (s - 1.0)
        cols = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :, None]
        rows = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None, None]
        cx = (xy[..., 0] + cols) / grid_w * in_w
        cy = (xy[..., 1] + rows) / grid_h * in_h
        anchors = tf.constant(head.anchors, tf.float32)  # (A, 2)
        half_w = tf.exp(t[..., 2]) * anchors[:, 0] / 2
        half_h = tf.exp(t[..., 3]) * anchors[:, 1] / 2
        yxyx = tf.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1)
        boxes.append(tf.reshape(yxyx, [shape[0], -1, 4]))
        objectness.append(tf.reshape(tf.sigmoid(t[..., 4]), [shape[0], -1]))
        classes.append(tf.reshape(tf.sigmoid(t[..., 5:]), [shape[0], -1, head.num_classes]))
    return tf.concat(boxes, 1), tf.concat(objectness, 1), tf.concat(classes, 1)


def detect_yolo(outputs, heads, input_hw, scale=None, offset=None, image_hw=None, score_threshold=0.25,
                iou_threshold=0.45, max_detections=100):
    """Raw head outputs -> per-class-NMS detections in image pixels: boxes (b, max_detections, 4) yxyx,
    scores, class ids (int32) and the number of valid rows per image.

    The network input (the canvas) relates to the image by canvas = image * scale + offset per axis
    ((b, 2) or (2,) tensors, (y, x)): a plain resize has scale = canvas size / image size and offset 0,
    a letterbox the scale it resized by and the padding before the image as offset. Boxes are clipped
    to `image_hw` ((b, 2) or (2,)) when it is given. A score is objectness x class probability (darknet
    also drops predictions whose objectness is under the threshold first, which changes nothing, as
    the product cannot exceed it); NMS is per class, so a box may be reported under several classes."""
    boxes, objectness, class_probs = decode_yolo(outputs, heads, input_hw)
    scores = objectness[..., None] * class_probs
    if scale is not None or offset is not None:
        scale = tf.ones([2]) if scale is None else tf.cast(scale, tf.float32)
        offset = tf.zeros([2]) if offset is None else tf.cast(offset, tf.float32)
        scale4, offset4 = tf.concat([scale, scale], -1), tf.concat([offset, offset], -1)
        if scale4.shape.rank == 2:
            scale4 = scale4[:, None, :]
        if offset4.shape.rank == 2:
            offset4 = offset4[:, None, :]
        boxes = (boxes - offset4) / scale4
    # NMS before clipping, as darknet (it clips only to draw)
    found, scores, classes, valid = per_class_nms(boxes, scores, score_threshold, iou_threshold, max_detections)
    if image_hw is not None:
        hw = tf.cast(image_hw, tf.float32)
        limit = tf.concat([hw, hw], -1)
        found = tf.clip_by_value(found, 0.0, limit[:, None, :] if limit.shape.rank == 2 else limit)
    return found, scores, classes, valid


def darknet_resize(images, size):
    """RGB images ((b,) h, w, c), uint8 or float in [0, 255] -> float32 (size_h, size_w) canvases in
    [0, 255], stretched with darknet's resize_image: bilinear with the corner pixels aligned and no
    antialiasing (what `darknet detector test` feeds a net without letter_box)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    images = tf.cast(images, tf.float32)
    batched = images if images.shape.rank == 4 else images[None]
    resized = tf.raw_ops.ResizeBilinear(images=batched, size=size, align_corners=True, half_pixel_centers=False)
    return resized if images.shape.rank == 4 else resized[0]


def prepare_image(image, size, letterbox=False):
    """uint8 (h, w, 3) -> (canvas float32 (size, size, 3) in [0, 255], scale (2,), offset (2,)) for
    detect_yolo: darknet's plain resize, or with letterbox=True the suite's letterbox (aspect kept,
    padded at the bottom and right: data.boxes.geometry.letterbox, which fine-tuning uses)."""
    image = tf.convert_to_tensor(image)
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    if letterbox:
        canvas, scale = suite_letterbox(tf.cast(image, tf.uint8), size)
        return tf.cast(canvas, tf.float32), scale, tf.zeros([2])
    return darknet_resize(image, size), tf.constant([size, size], tf.float32) / hw, tf.zeros([2])


def detect_image(model, image, heads=None, letterbox=False, score_threshold=0.25, iou_threshold=0.45,
                 max_detections=100):
    """One uint8 RGB image (h, w, 3) through a YOLO model (pixels in [0, 255] -> raw head outputs) ->
    {"boxes": (n, 4) yxyx image pixels, "scores": (n,), "classes": (n,)} as numpy, best first.
    `heads` defaults to the model's `yolo_heads` (set by backbones.darknet.build_darknet)."""
    heads = heads or model.yolo_heads
    image = np.asarray(image)
    size = model.input_shape[1:3]
    if size[0] != size[1]:
        raise ValueError(f"detect_image takes square network inputs; the model's is {size}")
    canvas, scale, offset = prepare_image(image, size[0], letterbox)
    outputs = model(canvas[None], training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    boxes, scores, classes, valid = detect_yolo(outputs, heads, size, scale, offset, image.shape[:2], score_threshold,
                                                iou_threshold, max_detections)
    n = int(valid[0])
    return {"boxes": boxes[0, :n].numpy(), "scores": scores[0, :n].numpy(), "classes": classes[0, :n].numpy()}
