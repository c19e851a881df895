"""Segmentation splits and records, exact crops, image and mask augmented together, deterministic epochs, eval batches."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data import DataError
from data.masks.pipeline import (SegmentationDataConfig, augment_batch, elastic, elastic_field,
                                 load_segmentation_splits, scale_and_crop, split_record, train_epoch, validation_batches)
from data.masks.sources import MaskSet

TINY = SegmentationDataConfig(crop_size=64, scene_size=64, train_scenes=24, val_scenes=4, test_scenes=4)
OFF = dict(flip=False, rotate90=False, scale=0.0, elastic=0.0, color_jitter=0.0)
COLOURS = np.array([[10, 20, 30], [200, 40, 40], [40, 200, 40], [40, 40, 200]], np.float32)  # class -> colour


def _painted(n, size=64, seed=0):
    """Images whose every pixel shows its class's colour, and their masks (rectangles of classes 1..3)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), np.int32)
    for m in masks:
        for c in (1, 2, 3):
            y, x = rng.integers(0, size - 20, 2)
            m[y:y + rng.integers(8, 20), x:x + rng.integers(8, 20)] = c
    return COLOURS[masks], masks


def _agreement(images, masks):
    """Share of pixels inside a class region (3x3 neighbourhood of one id, not ignore) showing that class's colour."""
    m = np.asarray(masks)
    pad = np.pad(m, ((0, 0), (1, 1), (1, 1)), mode="edge")
    uniform = np.ones(m.shape, bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            uniform &= pad[:, dy:dy + m.shape[1], dx:dx + m.shape[2]] == m
    inside = uniform & (m != 255)
    ok = np.abs(np.asarray(images) - COLOURS[np.where(m == 255, 0, m)]).max(-1) < 1.0
    return ok[inside].mean(), inside.mean()


def test_splits_of_scenes_and_errors():
    splits = load_segmentation_splits(TINY, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [24, 4, 4]
    assert splits["train"].class_names == ["background", "clothing", "trouser", "footwear", "bag"]
    assert splits["train"].images[0].shape == (64, 64, 3) and splits["train"].masks[0].shape == (64, 64)
    record = split_record(TINY, 0, splits)
    assert record["members"] is None
    # a fixed set records what names it: evaluating a run on other scenes by mistake is refused
    assert len(load_segmentation_splits(TINY, 0, record, ("test",))["test"]) == 4
    with pytest.raises(DataError, match=r"were made with other data flags \(scene_objects 'fashion' -> 'mnist'\)"):
        load_segmentation_splits(dataclasses.replace(TINY, scene_objects="mnist"), 0, record, ("test",))
    with pytest.raises(DataError, match="crop_size must be a multiple of 32, got 100"):
        load_segmentation_splits(dataclasses.replace(TINY, crop_size=100), 0)
    for source in ("folder", "voc"):
        with pytest.raises(DataError, match=f"source {source} needs --data.path"):
            load_segmentation_splits(dataclasses.replace(TINY, source=source), 0)
    with pytest.raises(DataError, match="source tfds .* needs --data.tfds_name"):
        load_segmentation_splits(dataclasses.replace(TINY, source="tfds"), 0)


def test_voc_sets_that_share_images_are_refused(tmp_path):
    from tests.data.masks.test_sources import _voc

    root = _voc(tmp_path / "VOC2012")
    (root / "ImageSets/Segmentation/trainval.txt").write_text("2007_000001\n2007_000002\n2007_000003\n")
    cfg = dataclasses.replace(TINY, source="voc", path=str(root), image_set="trainval", test_image_set="val")
    with pytest.raises(DataError, match=r"--data.image_set trainval and --data.test_image_set val share 1 image\(s\) "
                                        r"\(e.g. 2007_000003\): the test images must not be trained on"):
        load_segmentation_splits(cfg, 0)
    splits = load_segmentation_splits(dataclasses.replace(cfg, image_set="train", val_fraction=0.0), 0)
    assert (len(splits["train"]), len(splits["test"])) == (2, 1)


def test_a_tfds_set_names_the_classes_of_both_splits(tmp_path):
    """A set without known class names: class_<id> up to the largest id of either split (the test split's own
    largest made its names differ from the model's, and evaluate refuse the run)."""
    import tensorflow_datasets as tfds

    class TinyStreets(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "segmentation_mask": tfds.features.Image(shape=(None, None, 1))}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(3), "test": self._generate_examples(1)}

        def _generate_examples(self, top):
            for i in range(2):
                mask = np.zeros((8, 10, 1), np.uint8)
                mask[2:6, 2:8] = top - i % 2
                yield i, {"image": np.full((8, 10, 3), 60 * i, np.uint8), "segmentation_mask": mask}

    TinyStreets(data_dir=str(tmp_path)).download_and_prepare()
    cfg = dataclasses.replace(TINY, source="tfds", tfds_name="tiny_streets", data_dir=str(tmp_path), val_fraction=0.0)
    splits = load_segmentation_splits(cfg, 0)
    assert splits["train"].class_names == splits["test"].class_names == ["class_0", "class_1", "class_2", "class_3"]


def _folder(root, n=10):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(np.full((20, 24, 3), i * 20, np.uint8)).save(root / "images" / f"{i:02d}.png")
        mask = np.zeros((20, 24), np.uint8)
        mask[5:15, i:i + 8] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.png")
    return root


def test_split_record_pins_folder_members(tmp_path, capsys):
    cfg = dataclasses.replace(TINY, source="folder", path=str(_folder(tmp_path / "d")), val_fraction=0.2, test_fraction=0.2)
    splits = load_segmentation_splits(cfg, seed=3)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    record = split_record(cfg, 3, splits)
    assert record["class_names"] == ["background", "foreground"] and record["binary_masks"] is True
    assert sorted(sum(record["members"].values(), [])) == [f"images/{i:02d}.png" for i in range(10)]
    _folder(tmp_path / "more", n=12)
    for i in (10, 11):  # two images added since: ignored and counted
        for kind in ("images", "masks"):
            (tmp_path / "more" / kind / f"{i}.png").rename(tmp_path / "d" / kind / f"{i}.png")
    again = load_segmentation_splits(cfg, seed=3, record=record)
    assert all(again[s].files == splits[s].files for s in ("train", "val", "test"))
    np.testing.assert_array_equal(again["test"].masks[0], splits["test"].masks[0])
    assert "2 image(s) under" in capsys.readouterr().out
    with pytest.raises(DataError, match="other data flags"):
        load_segmentation_splits(dataclasses.replace(cfg, test_fraction=0.3), seed=3, record=record)


def test_a_recorded_split_reads_its_masks_as_the_whole_set_did(tmp_path):
    """classes.txt names 2 classes; masks are ids (0, lesion 1, 255 ignore), but 8 of 10 images have no lesion, so
    their masks hold only 0 and 255. Some split is all such masks: loaded alone from the record it must not be
    taken for a binary set (255 -> lesion)."""
    root = _folder(tmp_path / "d")
    (root / "classes.txt").write_text("background\nlesion\n")
    for i in range(10):
        mask = np.zeros((20, 24), np.uint8)
        mask[0, :] = 255
        if i < 2:
            mask[8:12, 8:16] = 1
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.png")
    cfg = dataclasses.replace(TINY, source="folder", path=str(root), val_fraction=0.2, test_fraction=0.2)
    splits = load_segmentation_splits(cfg, seed=3)
    record = split_record(cfg, 3, splits)
    assert record["binary_masks"] is False
    again = load_segmentation_splits(cfg, seed=3, record=record)
    for s in ("train", "val", "test"):
        for before, now in zip(splits[s].masks, again[s].masks):
            np.testing.assert_array_equal(now, before)


def test_unscaled_crop_is_exact_and_pads_with_ignore():
    image = np.arange(20 * 30 * 3, dtype=np.int64).reshape(20, 30, 3) % 251
    mask = (np.arange(20 * 30).reshape(20, 30) % 7).astype(np.uint8)
    for seed in range(4):
        x, y = scale_and_crop(tf.constant(image, tf.uint8), tf.constant(mask), tf.constant([seed, 1], tf.int64), 32, 0.0)
        x, y = x.numpy(), y.numpy()
        rows, cols = np.nonzero((y != 255).any(1))[0], np.nonzero((y != 255).any(0))[0]
        assert len(rows) == 20 and len(cols) == 30 and (y == 255).sum() == 32 * 32 - 600  # placed whole, padded around
        np.testing.assert_array_equal(y[rows[0]:rows[0] + 20, cols[0]:cols[0] + 30], mask)
        np.testing.assert_array_equal(x[rows[0]:rows[0] + 20, cols[0]:cols[0] + 30], image)
        assert (x[y == 255] == 0).all()
    big = np.random.default_rng(0).integers(0, 7, (50, 40)).astype(np.uint8)
    _, y = scale_and_crop(tf.zeros((50, 40, 3), tf.uint8), tf.constant(big), tf.constant([5, 1], tf.int64), 32, 0.0)
    found = [(r, c) for r in range(19) for c in range(9) if np.array_equal(big[r:r + 32, c:c + 32], y.numpy())]
    assert len(found) == 1  # an integer window of the mask


def test_scaled_crop_keeps_ids_and_moves_image_with_mask():
    images, masks = _painted(6)
    for i in range(6):
        x, y = scale_and_crop(tf.constant(images[i]), tf.constant(masks[i]), tf.constant([i, 2], tf.int64), 64, 0.5)
        assert set(np.unique(y)) <= set(np.unique(masks[i])) | {255}
        agree, inside = _agreement(x.numpy()[None], y.numpy()[None])
        assert agree > 0.99 and inside > 0.3


def test_flip_and_rot90_move_image_and_mask_together():
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 4, (16, 8, 8)).astype(np.int32)
    images = np.stack([masks * 10, masks * 10 + 1, masks * 10 + 2], -1).astype(np.float32)  # image tells its mask
    for flags, choices in ((dict(flip=True), [lambda a: a, np.fliplr]),
                           (dict(rotate90=True), [lambda a, k=k: np.rot90(a, k) for k in range(4)])):
        cfg = SegmentationDataConfig(**{**OFF, **flags})
        x, y = (t.numpy() for t in augment_batch(tf.constant(images), tf.constant(masks), tf.constant([3, 4], tf.int64), cfg))
        used = set()
        for i in range(16):
            which = [k for k, f in enumerate(choices) if np.array_equal(f(masks[i]), y[i]) and np.array_equal(f(images[i]), x[i])]
            assert which, f"sample {i}: image and mask are not one and the same flip/rotation of the input"
            used.add(which[0])
        assert used == set(range(len(choices)))  # every flip/rotation is drawn


def test_elastic_field_is_two_dimensional_with_the_stated_strength():
    coords = elastic_field(8, 128, 128, tf.constant([1, 2], tf.int64), 30.0, 16.0).numpy()
    yy, xx = np.mgrid[0:128, 0:128]
    dy, dx = coords[..., 0] - yy, coords[..., 1] - xx
    assert abs(np.corrcoef(dy.ravel(), dx.ravel())[0, 1]) < 0.3  # keras alone gives dy == dx (correlation 1)
    assert 0.2 * 30 < dy.std() < 0.35 * 30 and 0.2 * 30 < dx.std() < 0.35 * 30
    again = elastic_field(8, 128, 128, tf.constant([1, 2], tf.int64), 30.0, 16.0).numpy()
    np.testing.assert_array_equal(coords, again)


def test_elastic_keeps_mask_ids_exact_and_image_on_its_mask():
    images, masks = _painted(8)
    masks[:, :3] = 255  # ignore stays ignore
    x, y = elastic(tf.constant(images), tf.constant(masks), tf.constant([7, 7], tf.int64), 30.0, 8.0)
    x, y = x.numpy(), y.numpy()
    assert y.dtype == np.int32 and set(np.unique(y)) <= {0, 1, 2, 3, 255}
    assert (y != masks).mean() > 0.05  # it did deform
    agree, inside = _agreement(x, y)
    assert agree > 0.99 and inside > 0.6
    zero = elastic(tf.constant(images), tf.constant(masks), tf.constant([7, 7], tf.int64), 0.0, 8.0)
    np.testing.assert_allclose(zero[0], images, atol=1e-3)
    np.testing.assert_array_equal(zero[1], masks)


def test_train_epoch_pixels_match_their_ids_and_is_a_function_of_seed_and_epoch():
    images, masks = _painted(12, size=80)
    mset = MaskSet(list(images.astype(np.uint8)), list(masks.astype(np.uint8)), None, ["a", "b", "c", "d"])
    cfg = SegmentationDataConfig(crop_size=64, flip=True, rotate90=True, scale=0.3, elastic=20.0, elastic_sigma=8.0,
                                 color_jitter=0.0)
    first = lambda seed, epoch: next(iter(train_epoch(mset, cfg, 4, seed, epoch)))
    (x1, y1), (x2, y2), (x3, y3) = first(0, 1), first(0, 1), first(0, 2)
    assert x1.shape == (4, 64, 64, 3) and x1.dtype == tf.float32 and y1.shape == (4, 64, 64) and y1.dtype == tf.int32
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    for x, y in train_epoch(mset, cfg, 4, 0, 3):
        agree, _ = _agreement(x.numpy(), y.numpy())
        assert agree > 0.98
    jitter = dataclasses.replace(cfg, color_jitter=0.3)
    xj, yj = next(iter(train_epoch(mset, jitter, 4, 0, 1)))
    np.testing.assert_array_equal(yj, y1)  # colour jitter touches the image only
    assert not np.allclose(xj, x1)
    with pytest.raises(DataError, match="fewer than one batch"):
        train_epoch(mset, cfg, 16, 0, 0)


def test_validation_batches_pad_to_one_shape_and_bound_their_pixels(capsys):
    images, masks = _painted(5, size=32)
    same = MaskSet(list(images.astype(np.uint8)), list(masks.astype(np.uint8)), None, ["a", "b", "c", "d"])
    shapes = [(x.shape, y.shape, x.dtype, y.dtype) for x, y in validation_batches(same, 2, stride=16)]
    assert shapes == [((2, 32, 32, 3), (2, 32, 32), tf.float32, tf.int32)] * 2 + [((1, 32, 32, 3), (1, 32, 32), tf.float32, tf.int32)]
    mixed = MaskSet([np.full((20, 30, 3), 9, np.uint8), np.full((40, 24, 3), 7, np.uint8)],
                    [np.ones((20, 30), np.uint8), np.full((40, 24), 2, np.uint8)], None, ["a", "b", "c"])
    (x, y), = list(validation_batches(mixed, 8, stride=16))  # padded to 48 x 32: image 0, mask 255 (ignored)
    assert x.shape == (2, 48, 32, 3) and y.shape == (2, 48, 32)
    assert float(x[1, 0, 0, 0]) == 7.0 and int(y[1, 5, 5]) == 2 and int(y[0, 30, 5]) == 255 and float(x[0, 30, 5, 0]) == 0
    # a budget of 1,600 pixels: one 48 x 32 image a batch, no window
    assert [tuple(x.shape) for x, _ in validation_batches(mixed, 8, stride=16, max_pixels=1600)] == [(1, 48, 32, 3)] * 2
    big = MaskSet([np.arange(64 * 96 * 3, dtype=np.uint32).reshape(64, 96, 3).astype(np.uint8)],
                  [np.arange(64 * 96).reshape(64, 96).astype(np.uint8)], None, ["a"])
    (x, y), = list(validation_batches(big, 8, stride=16, max_pixels=1024))  # a central 32 x 32 window
    assert x.shape == (1, 32, 32, 3) and int(y[0, 0, 0]) == (16 * 96 + 32) % 256
    assert "validation scores the central 32x32 of images larger than that" in capsys.readouterr().out
