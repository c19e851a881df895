"""Mosaic augmentation: which canvas each quadrant shows, boxes moved, clipped and dropped, the off switch."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from data.boxes.mosaic import mosaic_batch, real_first
from data.boxes.pipeline import DetectionDataConfig, augment_batch
from data.fields import range_problem

S = 64
SEED = tf.constant([3, 4], tf.int64)
# one box per canvas, even pixels so that the half-scale canvases are exact; labels 5..8
BOXES = np.array([[[20, 40, 60, 60]], [[0, 0, 40, 20]], [[8, 0, 24, 16]], [[40, 40, 64, 64]]], np.float32)
LABELS = np.array([[5], [6], [7], [8]], np.int32)


def _canvases(boxes=BOXES):
    """Canvas i is grey level 40 * (i + 1), its real boxes white."""
    images = np.repeat(40.0 * np.arange(1, 5, dtype=np.float32), S * S * 3).reshape(4, S, S, 3)
    for image, image_boxes in zip(images, boxes.astype(int)):
        for y0, x0, y1, x1 in image_boxes:
            if y0 >= 0:
                image[y0:y1, x0:x1] = 255.0
    return images


def _expected_mosaic(images, k, cy, cx):
    """Canvas k's mosaic drawn with slices: canvases k..k+3 halved, each placed with its corner at the centre."""
    out = np.zeros_like(images[0])
    quadrants = [np.s_[:cy, :cx], np.s_[:cy, cx:], np.s_[cy:, :cx], np.s_[cy:, cx:]]
    corners = [(cy - S // 2, cx - S // 2), (cy - S // 2, cx), (cy, cx - S // 2), (cy, cx)]
    for j, (quadrant, (oy, ox)) in enumerate(zip(quadrants, corners)):
        big = np.zeros((2 * S, 2 * S, 3), np.float32)  # the canvas with S/2 of margin around it
        big[S // 2 + oy:S + oy, S // 2 + ox:S + ox] = images[(k + j) % 4, ::2, ::2]
        out[quadrant] = big[S // 2:S // 2 + S, S // 2:S // 2 + S][quadrant]
    return out


def _mosaic(images, boxes, labels, min_visible=0.4, p=1.0, centre=(24, 40), seed=SEED):
    out = mosaic_batch(tf.constant(images), tf.constant(boxes), tf.constant(labels), seed, min_visible, p, centre)
    return [t.numpy() for t in out]


def test_each_quadrant_shows_its_canvas_and_boxes_move_with_it():
    images = _canvases()
    centres = np.array([[24, 40], [40, 24], [32, 32], [16, 48]])
    out, boxes, labels = _mosaic(images, BOXES, LABELS, centre=centres)
    assert out.shape == images.shape and boxes.shape == (4, 4, 4) and labels.shape == (4, 4)
    for k, (cy, cx) in enumerate(centres):
        np.testing.assert_allclose(out[k], _expected_mosaic(images, k, cy, cx), atol=1e-3)
        for j in range(4):  # box slot j holds canvas k + j's box, or nothing
            assert labels[k, j] in (LABELS[(k + j) % 4, 0], -1)
    # canvas 0, centre (24, 40): each box halved and shifted by its half canvas's corner, then clipped
    np.testing.assert_array_equal(boxes[0], [[2, 28, 22, 38],  # top-left, corner (-8, 8): whole
                                             [0, 40, 12, 50],  # top-right, corner (-8, 40): 0.6 of it left
                                             [28, 8, 36, 16],  # bottom-left, corner (24, 8): whole
                                             [-1, -1, -1, -1]])  # bottom-right: [44, 60, 56, 72] keeps 1/3
    np.testing.assert_array_equal(labels[0], [5, 6, 7, -1])


@pytest.mark.parametrize("min_visible, kept", [(0.0, [8, -1]), (0.3, [8, -1]), (0.4, [-1, -1])])
def test_boxes_mostly_cut_off_or_too_narrow_are_dropped(min_visible, kept):
    boxes = np.concatenate([BOXES, -np.ones_like(BOXES)], axis=1)
    boxes[3, 1] = [40, 46, 64, 64]  # bottom-right quadrant: [44, 63, 56, 64], 1 px wide
    labels = np.concatenate([LABELS, -np.ones_like(LABELS)], axis=1)
    labels[3, 1] = 8
    _, out, out_labels = _mosaic(_canvases(boxes), boxes, labels, min_visible)
    assert out.shape == (4, 8, 4)
    np.testing.assert_array_equal(out_labels[0, 6:], kept)  # canvas 0's slots for canvas 3's boxes
    expected = [[44, 60, 56, 64] if label >= 0 else [-1] * 4 for label in kept]
    np.testing.assert_array_equal(out[0, 6:], expected)
    assert (out[out_labels < 0] == -1).all()
    assert all(out_labels[k, 2 * j + 1] == -1 for k in range(4) for j in range(4) if (k + j) % 4 != 3)  # padding


def test_canvases_not_drawn_keep_their_image_and_boxes():
    images = _canvases()
    out, boxes, labels = _mosaic(images, BOXES, LABELS, p=0.0)
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(boxes[:, :1], BOXES)
    np.testing.assert_array_equal(labels, np.pad(LABELS, [(0, 0), (0, 3)], constant_values=-1))
    assert (boxes[:, 1:] == -1).all()
    many = np.concatenate([images, images])  # p 0.5: each canvas one or the other
    out, boxes, _ = _mosaic(many, np.concatenate([BOXES, BOXES]), np.concatenate([LABELS, LABELS]), p=0.5, centre=None)
    same = [np.array_equal(a, b) for a, b in zip(out, many)]
    assert 0 < sum(same) < len(same)
    for is_same, image_boxes, original in zip(same, boxes, np.concatenate([BOXES, BOXES])):
        assert not is_same or (np.array_equal(image_boxes[:1], original) and (image_boxes[1:] == -1).all())


def test_augment_batch_draws_are_unchanged_by_the_mosaic_option():
    cfg = DetectionDataConfig(zoom=0.4)
    images, boxes, labels = tf.constant(_canvases()), tf.constant(BOXES), tf.constant(LABELS)
    x, b, lab = (t.numpy() for t in augment_batch(images, boxes, labels, SEED, cfg))
    assert b.shape == (4, 1, 4) and lab.shape == (4, 1)
    # a mosaic probability too small to draw any: the flips, zooms and jitter are the ones without it
    x2, b2, lab2 = (t.numpy() for t in augment_batch(images, boxes, labels, SEED, dataclasses.replace(cfg, mosaic=1e-9)))
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(b2[:, :1], b)
    np.testing.assert_array_equal(lab2[:, :1], lab)
    assert (lab2[:, 1:] == -1).all()
    x3, b3, lab3 = (t.numpy() for t in augment_batch(images, boxes, labels, SEED, dataclasses.replace(cfg, mosaic=1.0)))
    real = lab3 >= 0
    assert not np.array_equal(x3, x) and real.sum(1).max() > 1  # mosaics: canvases with boxes of several scenes
    assert b3.shape == (4, real.sum(1).max(), 4) <= (4, 4, 4)  # the box axis cut to the most a canvas holds
    assert (np.sort(real, axis=1)[:, ::-1] == real).all() and (b3[~real] == -1).all()  # real boxes first


def test_real_first_keeps_each_canvas_order_and_cuts_the_padding():
    labels = tf.constant([[-1, 3, -1, 5], [-1, -1, -1, -1], [2, -1, -1, -1]])
    boxes = tf.cast(tf.tile(labels[..., None], [1, 1, 4]), tf.float32)
    out_boxes, out_labels = real_first(boxes, labels)
    np.testing.assert_array_equal(out_labels, [[3, 5], [-1, -1], [2, -1]])
    np.testing.assert_array_equal(out_boxes[..., 0], [[3, 5], [-1, -1], [2, -1]])


def test_mosaic_probability_is_within_0_and_1():
    meta = {f.name: f.metadata for f in dataclasses.fields(DetectionDataConfig)}["mosaic"]
    assert DetectionDataConfig().mosaic is None  # the app's recipe sets it by source
    assert range_problem(0.0, meta) is None and range_problem(1.0, meta) is None
    assert range_problem(-0.1, meta) == range_problem(1.5, meta) == "must be >= 0.0 and <= 1.0"
