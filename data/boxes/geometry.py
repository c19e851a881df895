"""Boxes: every source's format converted once to the suite's one format, and letterboxing.

Inside the suite a box is float [y_min, x_min, y_max, x_max] in pixels of its image (the order
tf.image and keras-hub use). Images of any size are letterboxed onto a square canvas: scaled to
fit, aspect ratio kept, padded at the bottom and right, so a canvas box maps back to the input
image by one division per axis.
"""
import keras
import numpy as np
import tensorflow as tf

from data.errors import DataError
from data.images.files import resize_uint8


def from_voc(xmin, ymin, xmax, ymax):
    """Pascal VOC <bndbox> (1-based inclusive pixel indices) -> yxyx pixel edges."""
    return np.array([ymin - 1, xmin - 1, ymax, xmax], np.float32)


def from_coco(xywh):
    """COCO [x, y, width, height] boxes (n, 4) -> yxyx."""
    xywh = np.asarray(xywh, np.float32).reshape(-1, 4)
    return np.asarray(keras.utils.bounding_boxes.convert_format(xywh, source="xywh", target="yxyx"), np.float32)


def from_relative(rel_yxyx, height, width):
    """tfds BBoxFeature (relative yxyx in 0..1) -> yxyx pixels."""
    rel = np.asarray(rel_yxyx, np.float32).reshape(-1, 4)
    return np.asarray(keras.utils.bounding_boxes.convert_format(
        rel, source="rel_yxyx", target="yxyx", height=height, width=width), np.float32)


def to_xyxy(yxyx):
    return np.asarray(yxyx)[..., [1, 0, 3, 2]]


def check_boxes(boxes, height, width, where, tolerance=1.0):
    """Refuse boxes that are empty or lie outside their (height, width) image; `where` names the file."""
    for y0, x0, y1, x1 in np.asarray(boxes).reshape(-1, 4):
        if not (y1 > y0 and x1 > x0):
            raise DataError(f"{where}: empty box (y_min {y0:g}, x_min {x0:g}, y_max {y1:g}, x_max {x1:g})")
        if y0 < -tolerance or x0 < -tolerance or y1 > height + tolerance or x1 > width + tolerance:
            raise DataError(f"{where}: box (x_min {x0:g}, y_min {y0:g}, x_max {x1:g}, y_max {y1:g}) lies outside "
                            f"the {width}x{height} image")


def letterbox(image, size):
    """uint8 (h, w, c) image -> (size, size, c) canvas and the (y, x) scale from image to canvas pixels."""
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.minimum(size / h, size / w)
    new_h = tf.clip_by_value(tf.round(h * scale), 1, size)
    new_w = tf.clip_by_value(tf.round(w * scale), 1, size)
    resized = resize_uint8(image, tf.cast(tf.stack([new_h, new_w]), tf.int32))
    canvas = tf.image.pad_to_bounding_box(resized, 0, 0, size, size)
    return canvas, tf.stack([new_h / h, new_w / w])


MIN_SIDE = 2.0  # pixels: boxes an augmentation leaves thinner than this are dropped


def box_area(yxyx):
    """Areas of yxyx boxes (..., 4); an inverted box has none."""
    return tf.maximum(yxyx[..., 2] - yxyx[..., 0], 0.0) * tf.maximum(yxyx[..., 3] - yxyx[..., 1], 0.0)


def wide_enough(yxyx):
    """Whether yxyx boxes (..., 4) are at least MIN_SIDE pixels high and wide."""
    return (yxyx[..., 2] - yxyx[..., 0] >= MIN_SIDE) & (yxyx[..., 3] - yxyx[..., 1] >= MIN_SIDE)


def canvas_to_image(boxes, scale, image_hw):
    """Canvas yxyx boxes (..., 4) -> the input image's pixels, clipped to it. scale: (..., 2) as letterbox gives."""
    scale4 = tf.concat([scale, scale], axis=-1)
    size4 = tf.cast(tf.concat([image_hw, image_hw], axis=-1), boxes.dtype)
    return tf.clip_by_value(boxes / scale4[..., None, :], 0.0, size4[..., None, :])


def per_class_nms(boxes, scores, score_threshold, iou_threshold, max_detections):
    """Boxes (b, n, 4) yxyx shared by every class and their scores (b, n, classes) -> non-max suppression per
    class (a box may be kept under several classes): boxes (b, max_detections, 4), scores, class ids (int32)
    and the number of valid rows. Boxes are not clipped."""
    nms = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], scores, max_output_size_per_class=max_detections, max_total_size=max_detections,
        iou_threshold=iou_threshold, score_threshold=score_threshold, pad_per_class=False, clip_boxes=False)
    return nms.nmsed_boxes, nms.nmsed_scores, tf.cast(nms.nmsed_classes, tf.int32), nms.valid_detections
