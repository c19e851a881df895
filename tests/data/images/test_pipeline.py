"""Splits, deterministic epochs, exact augmentation and the tfds offline error."""
import numpy as np
import pytest
import tensorflow as tf

from data import DataError
from data.images.pipeline import ImageDataConfig, augment_batch, channel_stats, eval_batches, load_splits, train_epoch
from data.images.sources import load_embedded
from tests.conftest import make_class_folder


def test_embedded_splits_are_disjoint_and_seeded():
    cfg = ImageDataConfig(limit=1000)
    a, b = load_splits(cfg, seed=1), load_splits(cfg, seed=1)
    assert len(a["train"].labels) + len(a["val"].labels) == 1000 and len(a["test"].labels) == 1000
    assert abs(len(a["val"].labels) - 100) <= 5  # 10% of each class, rounded per class
    np.testing.assert_array_equal(a["val"].images, b["val"].images)
    assert a["train"].images.shape[1:] == (28, 28, 1) and a["train"].class_names[0] == "t-shirt/top"
    assert not load_splits(cfg, seed=2)["val"].images.tobytes() == a["val"].images.tobytes()


def test_folder_source_resizes_and_splits(class_folder):
    cfg = ImageDataConfig(source="folder", path=str(class_folder), image_size=16, val_fraction=0.25, test_fraction=0.25)
    splits = load_splits(cfg, seed=0)
    assert splits["train"].images.shape[1:] == (16, 16, 3)
    assert [len(s.labels) for s in splits.values()] == [21, 6, 9]  # per class of 12: 3 test, then 2 of 9 val, 7 train


def test_a_folder_limit_is_a_seeded_sample_of_every_class(tmp_path):
    """The folder's images come class by class: the first 9 of two classes of 10 would all be cats."""
    root = make_class_folder(tmp_path / "images", classes=("cat", "dog"), per_class=10)
    cfg = ImageDataConfig(source="folder", path=str(root), image_size=8, limit=9, val_fraction=0.0)
    train = load_splits(cfg, seed=0)["train"]
    assert len(train.labels) == 9 and set(train.labels) == {0, 1}
    assert load_splits(cfg, seed=0)["train"].files == train.files  # the same sample every time


def test_epoch_is_a_pure_function_of_seed_and_epoch():
    train = load_splits(ImageDataConfig(limit=256), seed=0)["train"]
    cfg = ImageDataConfig(color_jitter=0.2)
    first = [x.numpy() for x, _ in train_epoch(train, cfg, 32, seed=3, epoch=1)]
    again = [x.numpy() for x, _ in train_epoch(train, cfg, 32, seed=3, epoch=tf.constant(1, tf.int64))]
    other = [x.numpy() for x, _ in train_epoch(train, cfg, 32, seed=3, epoch=2)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))
    assert len(first) == 230 // 32  # drop_remainder: only full batches


def test_augmentation_keeps_shape_and_range():
    x = tf.random.uniform((4, 10, 12, 3), 0, 255)
    y = augment_batch(x, tf.constant([1, 2], tf.int64), ImageDataConfig(color_jitter=0.5, crop_padding=3))
    assert y.shape == x.shape and float(tf.reduce_min(y)) >= 0 and float(tf.reduce_max(y)) <= 255


def test_no_augmentation_is_identity():
    x = tf.random.uniform((4, 10, 12, 3), 0, 255)
    y = augment_batch(x, tf.constant([1, 2], tf.int64), ImageDataConfig(flip=False, crop_padding=0))
    np.testing.assert_array_equal(x, y)


def test_channel_stats_and_eval_batches():
    images = np.stack([np.full((2, 2, 1), 10, np.uint8), np.full((2, 2, 1), 30, np.uint8)])
    mean, var = channel_stats(images)
    assert mean == [20.0] and var == [100.0]
    split = load_splits(ImageDataConfig(limit=100), seed=0)["val"]
    x, y = next(iter(eval_batches(split, 8)))
    assert x.dtype == tf.float32 and y.shape == (8, 10)


def test_tfds_offline_errors(tmp_path):
    with pytest.raises(DataError, match="needs --data.data_dir"):
        load_splits(ImageDataConfig(source="tfds", tfds_name="mnist"), seed=0)
    with pytest.raises(DataError, match=r"not prepared in .*tfds build mnist"):
        load_splits(ImageDataConfig(source="tfds", tfds_name="mnist", data_dir=str(tmp_path)), seed=0)
    with pytest.raises(DataError, match="unknown tfds data set 'no_such_set'"):
        load_splits(ImageDataConfig(source="tfds", tfds_name="no_such_set", data_dir=str(tmp_path)), seed=0)


def test_missing_paths():
    with pytest.raises(DataError, match="needs --data.path"):
        load_splits(ImageDataConfig(source="folder"), seed=0)
    with pytest.raises(DataError, match="IDX folder not found: /nowhere"):
        load_splits(ImageDataConfig(source="idx", path="/nowhere"), seed=0)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_embedded_sets_hold_every_class_in_both_splits(name):
    sets = load_embedded(name)
    for split in ("train", "test"):
        counts = np.bincount(sets[split].labels, minlength=10)
        assert counts.min() >= 0.05 * counts.sum(), (split, counts)  # the MNIST source is sorted by digit
