"""Multi-scale training batches (--data.multi_scale): the sides drawn, boxes scaled with the canvas, and the
other augmentation draws unchanged by it."""
import numpy as np
import pytest
import tensorflow as tf

from data.boxes.pipeline import DetectionDataConfig, canvas_sides, load_detection_splits, rescale_batch, train_epoch


@pytest.mark.parametrize("size,spread,sides", [(256, 0.25, [192, 224, 256, 288, 320]), (256, 0.0, [256]),
                                               (128, 0.1, [128]), (64, 0.9, [32, 64, 96])])
def test_canvas_sides_are_multiples_of_32_around_the_size(size, spread, sides):
    assert canvas_sides(DetectionDataConfig(image_size=size, multi_scale=spread)) == sides


def test_rescale_moves_boxes_with_the_canvas_and_keeps_padding():
    images = tf.random.stateless_uniform([2, 64, 64, 3], [1, 2], 0, 255)
    boxes = tf.constant([[[8.0, 16.0, 40.0, 48.0], [-1, -1, -1, -1]], [[0.0, 0.0, 64.0, 64.0], [4, 4, 20, 12]]])
    labels = tf.constant([[3, -1], [0, 1]])
    seen = set()
    for s in range(40):
        out, moved, kept = rescale_batch(images, boxes, labels, tf.constant([s, 7], tf.int64), [32, 64, 96])
        side = out.shape[1]
        seen.add(side)
        assert out.shape == (2, side, side, 3)
        np.testing.assert_allclose(moved[0, 0], np.array([8, 16, 40, 48]) * side / 64, rtol=1e-6)
        np.testing.assert_array_equal(moved[0, 1], [-1, -1, -1, -1])
        np.testing.assert_allclose(moved[1, 0], [0, 0, side, side], rtol=1e-6)
        np.testing.assert_array_equal(kept, labels)
    assert seen == {32, 64, 96}
    again = rescale_batch(images, boxes, labels, tf.constant([5, 7], tf.int64), [32, 64, 96])[0]
    first = rescale_batch(images, boxes, labels, tf.constant([5, 7], tf.int64), [32, 64, 96])[0]
    np.testing.assert_array_equal(again, first)


def test_boxes_shrunk_under_two_pixels_are_dropped():
    images = tf.zeros([1, 64, 64, 3])
    boxes = tf.constant([[[10.0, 10.0, 13.0, 30.0], [10.0, 10.0, 14.0, 30.0]]])  # 3 and 4 pixels high
    for seed in range(20):
        _, moved, kept = rescale_batch(images, boxes, tf.constant([[1, 2]]), tf.constant([seed, 0], tf.int64), [32])
        np.testing.assert_array_equal(kept, [[-1, 2]])
        np.testing.assert_array_equal(moved[0, 0], [-1, -1, -1, -1])


def test_sides_step_by_the_coarsest_stride_when_asked():
    assert canvas_sides(DetectionDataConfig(image_size=256, multi_scale=0.25), step=64) == [192, 256, 320]
    assert canvas_sides(DetectionDataConfig(image_size=320, multi_scale=0.1)) == [288, 320, 352]  # 0.1 * 320 = 32


def test_batches_of_the_configured_side_are_the_batches_without_multi_scale():
    cfg = DetectionDataConfig(image_size=64, train_scenes=96, mosaic=0.0)
    train = load_detection_splits(cfg, seed=0, names=("train",))["train"]
    plain = list(train_epoch(train, cfg, 8, seed=3, epoch=1))
    multi = list(train_epoch(train, DetectionDataConfig(image_size=64, train_scenes=96, mosaic=0.0, multi_scale=0.5),
                             8, seed=3, epoch=1))
    sides = [x.shape[1] for x, _ in multi]
    assert set(sides) <= {32, 64, 96} and len(set(sides)) > 1
    same = 0
    for (x, truth), (xm, truth_m) in zip(plain, multi):
        labels, labels_m = truth["labels"].numpy(), truth_m["labels"].numpy()
        kept = labels_m >= 0
        np.testing.assert_array_equal(labels_m[kept], labels[kept])
        factor = xm.shape[1] / 64
        np.testing.assert_allclose(truth_m["boxes"].numpy()[kept], truth["boxes"].numpy()[kept] * factor, rtol=1e-5)
        dropped = truth["boxes"].numpy()[(labels >= 0) & ~kept] * factor  # only boxes shrunk under 2 pixels
        assert (np.minimum(dropped[:, 2] - dropped[:, 0], dropped[:, 3] - dropped[:, 1]) < 2).all()
        if factor == 1:
            np.testing.assert_array_equal(labels_m, labels)
        if xm.shape[1] == 64:
            np.testing.assert_allclose(xm, x, atol=1e-3)
            same += 1
    assert same
