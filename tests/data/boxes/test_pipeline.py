"""Letterboxing, generated scenes, splits and box-aware augmentation."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from data import DataError
from data.boxes.geometry import canvas_to_image, letterbox
from data.boxes.pipeline import DetectionDataConfig, augment_batch, load_detection_splits, to_detection_set, train_epoch
from data.boxes.sources import load_coco, load_voc
from data.generated.scenes import make_scenes
from tests.data.boxes.test_sources import write_coco, write_voc

TINY = DetectionDataConfig(image_size=64, train_scenes=40, val_scenes=8, test_scenes=8)


def test_letterbox_and_back():
    canvas, scale = letterbox(tf.fill([50, 100, 3], tf.constant(200, tf.uint8)), 64)
    np.testing.assert_allclose(scale, [0.64, 0.64])
    assert canvas.shape == (64, 64, 3) and int(canvas[31, 63, 0]) == 200 and int(canvas[33, 0, 0]) == 0  # padded below
    box = tf.constant([[[10.0, 20.0, 40.0, 90.0]]])
    back = canvas_to_image(box * 0.64, scale[None], tf.constant([[50, 100]]))
    np.testing.assert_allclose(back, box, atol=1e-4)
    clipped = canvas_to_image(tf.constant([[[-3.0, 0.0, 70.0, 70.0]]]), scale[None], tf.constant([[50, 100]]))
    np.testing.assert_allclose(clipped, [[[0, 0, 50, 100]]], atol=1e-4)


def test_scenes_are_deterministic_and_boxes_hold_ink():
    a, b = make_scenes(6, seed=3, size=64), make_scenes(6, seed=3, size=64)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], make_scenes(6, seed=4, size=64)[0])
    images, boxes, labels, names = a
    assert names == [str(i) for i in range(10)] and all(2 <= len(lab) <= 5 for lab in labels)
    for image, bxs in zip(images, boxes):
        assert (bxs[:, :2] >= 0).all() and (bxs[:, 2:] <= 64).all() and (bxs[:, 2:] > bxs[:, :2]).all()


def test_splits_of_scenes_and_folders():
    splits = load_detection_splits(TINY, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [40, 8, 8]
    boxes, labels = splits["train"].padded()
    assert boxes.shape[1] == labels.shape[1] == max(len(b) for b in splits["train"].boxes)
    assert ((labels >= 0) == (boxes[..., 0] >= 0)).all()
    with pytest.raises(DataError, match="multiple of 32"):
        load_detection_splits(dataclasses.replace(TINY, image_size=100), 0)
    with pytest.raises(DataError, match="source voc needs --data.path"):
        load_detection_splits(dataclasses.replace(TINY, source="voc"), 0)
    with pytest.raises(DataError, match="needs --data.annotations"):
        load_detection_splits(dataclasses.replace(TINY, source="coco", path="x"), 0)
    with pytest.raises(DataError, match="--data.classes names the classes of voc and coco files; a tfds set has its own"):
        load_detection_splits(dataclasses.replace(TINY, source="tfds", tfds_name="voc/2007", classes="dog,cat"), 0)


def test_a_test_split_that_rounds_to_nothing_is_refused_before_training(tmp_path):
    for k in range(4):
        write_voc(tmp_path, f"p{k}", [("dog", 5, 5, 30, 30)])
    cfg = DetectionDataConfig(source="voc", path=str(tmp_path), image_size=32, test_fraction=0.1, val_fraction=0.0)
    with pytest.raises(DataError, match=r"the test split is empty: 0.1 of 4 annotated images rounds to none; raise "
                                        r"--data.test_fraction"):
        load_detection_splits(cfg, seed=0)
    assert len(load_detection_splits(dataclasses.replace(cfg, test_fraction=0.25), seed=0)["test"]) == 1


def test_crowd_regions_are_no_training_targets(tmp_path):
    """A COCO iscrowd box is left out of padded() (torchvision, Detectron2), a VOC difficult object is kept; the mAP
    ignores both (crowd)."""
    (tmp_path / "coco").mkdir()
    ann, img = write_coco(tmp_path / "coco", [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]},
                                              {"id": 2, "image_id": 1, "category_id": 7, "bbox": [0, 0, 50, 30], "iscrowd": 1}])
    coco = to_detection_set(load_coco(ann, img)[0], ["cat", "dog"], 64)
    write_voc(tmp_path / "voc", "a", [("dog", 11, 6, 30, 20, 1)])
    voc = to_detection_set(load_voc(tmp_path / "voc")[0], ["dog"], 64)
    boxes, labels = coco.padded()
    assert labels.tolist() == [[1]]  # the dog; the crowd of cats is gone
    np.testing.assert_allclose(boxes[0, 0], coco.canvas_boxes()[0][0])
    assert coco.take([0]).padded()[1].tolist() == [[1]] and coco.crowd[0].tolist() == [False, True]
    assert voc.padded()[1].tolist() == [[0]] and voc.crowd[0].tolist() == [True]


def _bright_extent(image):
    ys, xs = np.nonzero(image[..., 0] > 128)
    return [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]


@pytest.mark.parametrize("flip,zoom", [(True, 0.0), (True, 0.4), (False, 0.4)])
def test_augmentation_moves_boxes_with_the_image(flip, zoom):
    images = np.zeros((8, 64, 64, 3), np.float32)
    boxes = np.zeros((8, 2, 4), np.float32)
    for i in range(8):
        y, x = 12 + i, 20 + 2 * i
        images[i, y:y + 20, x:x + 12] = 255.0
        boxes[i] = [[y, x, y + 20, x + 12], [-1, -1, -1, -1]]
    labels = np.tile([[5, -1]], (8, 1))
    cfg = DetectionDataConfig(flip=flip, zoom=zoom, color_jitter=0.0, min_visible=0.0)
    out, moved, kept = (t.numpy() for t in augment_batch(tf.constant(images), tf.constant(boxes), tf.constant(labels),
                                                       tf.constant([1, 2], tf.int64), cfg))
    np.testing.assert_array_equal(kept[:, 1], -1)
    np.testing.assert_array_equal(moved[:, 1], -1)
    for i in range(8):
        np.testing.assert_allclose(moved[i, 0], _bright_extent(out[i]), atol=1.01)
    if zoom:
        assert np.ptp(moved[:, 0, 2] - moved[:, 0, 0]) > 2  # scales differ per image


def test_boxes_cut_off_by_the_crop_are_dropped():
    images = np.zeros((1, 64, 64, 3), np.float32)
    boxes = np.array([[[0, 0, 8, 8], [20, 20, 40, 40]]], np.float32)
    cfg = DetectionDataConfig(flip=False, zoom=0.0, color_jitter=0.0)
    _, _, labels = augment_batch(tf.constant(images), tf.constant(boxes), tf.constant([[1, 2]]), tf.constant([0, 0], tf.int64), cfg)
    assert labels.numpy().tolist() == [[1, 2]]
    # zoom 1.9 (s in [0.1, 1.9]): some seed crops the corner box away but never the centre one entirely
    cfg = DetectionDataConfig(flip=False, zoom=0.9, color_jitter=0.0, min_visible=0.5)
    seen = set()
    for seed in range(40):
        _, b, lab = augment_batch(tf.constant(images), tf.constant(boxes), tf.constant([[1, 2]]),
                                  tf.constant([seed, 0], tf.int64), cfg)
        seen.add(int(lab[0, 0]))
        assert (b.numpy()[lab.numpy() < 0] == -1).all()
    assert seen == {1, -1}


def test_train_epoch_is_a_pure_function_of_seed_and_epoch():
    train = load_detection_splits(TINY, seed=0)["train"]
    first = lambda seed, epoch: next(iter(train_epoch(train, TINY, 8, seed, epoch)))
    (x1, y1), (x2, y2), (x3, _) = first(0, 1), first(0, 1), first(0, 2)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1["boxes"], y2["boxes"])
    assert not np.array_equal(x1, x3)
    with pytest.raises(DataError, match="fewer than one batch"):
        train_epoch(train, TINY, 64, 0, 0)
