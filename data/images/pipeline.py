"""Image-classification pipelines: splits, per-batch vectorised augmentation, batching.

Decoded images stay in memory (decode once; on 2 cores prefetch barely overlaps), and the order
and augmentation of training epoch `e` are stateless functions of (seed, e): a resumed run reads
exactly the batches an uninterrupted one would, without checkpointing an iterator.
"""
import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from data.errors import DataError, check_one_batch
from data.fields import field
from data.images.sources import (EMBEDDED, ImageSet, class_folder_record, list_class_images, load_class_folder,
                                 load_class_members, load_embedded, load_idx_folder, load_tfds, seeded_split)
from data.pipeline_options import finish
from data.split_record import new_record, recorded_or_fresh, report_new

SPLITS = ("train", "val", "test")

SOURCES = ["fashion_mnist", "mnist", "idx", "folder", "tfds"]


@dataclasses.dataclass
class ImageDataConfig:
    source: str = field("fashion_mnist", "embedded set, or where images come from", SOURCES)
    path: Optional[str] = field(None, "folder of class sub-folders (source folder) or of IDX files (source idx)")
    tfds_name: Optional[str] = field(None, "tfds data set name (source tfds)")
    data_dir: Optional[str] = field(None, "tfds data_dir holding the prepared set (source tfds)")
    image_size: Optional[int] = field(None, "resize images to N x N (none: the source's own size; folders: 32)", min=8)
    channels: Optional[int] = field(None, "1 or 3 (none: the source's own)", [1, 3])
    val_fraction: float = field(0.1, "share of the training images held out for validation", min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = field(0.1, "share held out for test when the source has no test split", min=0.0, max=1.0, max_exclusive=True)
    limit: Optional[int] = field(None, "use only the first N training images (quick runs; folder: a seeded random N)", min=1)
    skip_bad_files: bool = field(False, "skip unreadable image files (with a count) instead of stopping")
    flip: bool = field(True, "random horizontal flips")
    crop_padding: int = field(2, "random crops after padding by N pixels (0: off)", min=0)
    color_jitter: float = field(0.0, "random brightness/contrast (and saturation) strength, 0..1", min=0.0, max=1.0)


def load_splits(cfg, seed, record=None, names=SPLITS):
    """{'train', 'val', 'test'} ImageSets for a data config (only `names`); class names shared by all.

    With `record`, the run's split record (data.split_record, made by `split_record`), a folder source
    gives exactly the recorded members, whatever was added to or removed from the folder since; data
    flags that would change them are refused. Fixed sources (embedded, idx, tfds) record only their
    identity: their test split cannot move."""
    def fresh():
        sets = _fresh_splits(cfg, seed)
        return {name: sets[name] for name in names}

    return recorded_or_fresh(record, cfg.source, split_recipe(cfg, seed), lambda: _recorded_splits(cfg, record, names), fresh)


def split_recipe(cfg, seed):
    """The data flags that decide which images each split of a folder holds (image size and channels do
    not); for a fixed source, only what names the set."""
    if cfg.source == "folder":
        return {"source": cfg.source, "seed": seed, "test_fraction": cfg.test_fraction,
                "val_fraction": cfg.val_fraction, "limit": cfg.limit}
    return {"source": cfg.source, **({"tfds_name": cfg.tfds_name} if cfg.source == "tfds" else {})}


def split_record(cfg, seed, sets):
    """The split record of freshly made splits: the members (relative path, class name) of each split of a
    folder source; only the identity (source and recipe) of the others, whose splits are fixed already."""
    if cfg.source != "folder":
        return new_record(cfg.source, split_recipe(cfg, seed), sets["train"].class_names)
    return class_folder_record(cfg.source, split_recipe(cfg, seed), sets, cfg.path)


def _recorded_splits(cfg, record, names):
    root = _required(cfg.path, "data.path", "class-folder")
    known = {m["path"] for split in record["members"].values() for m in split} | set(record["unused"])
    report_new(sum(f not in known for f in list_class_images(root)), f"image file(s) under {root}")
    size = cfg.image_size or 32
    sets = {name: load_class_members(root, record["members"][name], record["class_names"], (size, size),
                                     cfg.channels or 3, cfg.skip_bad_files, name) for name in names}
    return {name: _conform(s, cfg) for name, s in sets.items()}


def _fresh_splits(cfg, seed):
    if cfg.source in EMBEDDED:
        sets = load_embedded(cfg.source)
    elif cfg.source == "idx":
        sets = load_idx_folder(_required(cfg.path, "data.path", "IDX"))
    elif cfg.source == "folder":
        size = cfg.image_size or 32
        full = load_class_folder(_required(cfg.path, "data.path", "class-folder"), (size, size), cfg.channels or 3, cfg.skip_bad_files)
        test, rest = seeded_split(full, [cfg.test_fraction], seed)
        sets = {"train": rest, "test": test}
    elif cfg.source == "tfds":
        name = _required(cfg.tfds_name, "data.tfds_name", "tfds")
        sets = {s: load_tfds(name, cfg.data_dir, s) for s in ("train", "test")}
    else:
        raise DataError(f"unknown data source {cfg.source!r}; choose one of {', '.join(SOURCES)}")
    sets = {k: _conform(v, cfg) for k, v in sets.items()}
    if cfg.limit:
        n = len(sets["train"].labels)
        # A folder's images come class by class, so its first N could all be one class's: a seeded random N
        # instead, each class in about its share (the embedded, IDX and tfds sets come shuffled already).
        keep = np.random.default_rng(seed).permutation(n)[:cfg.limit] if cfg.source == "folder" else np.arange(min(cfg.limit, n))
        sets["train"] = sets["train"].take(np.sort(keep))
    val, train = seeded_split(sets["train"], [cfg.val_fraction], seed)
    for name, s in (("train", train), ("test", sets["test"])):
        if len(s.labels) == 0:
            raise DataError(f"the {name} split of source {cfg.source!r} is empty")
    return {"train": train, "val": val, "test": sets["test"]}


def _required(value, key, what):
    if not value:
        raise DataError(f"the {what} source needs --{key}")
    return value


def _conform(image_set, cfg):
    """Apply the configured size and channel count to in-memory images."""
    images = image_set.images
    if cfg.channels and images.shape[-1] != cfg.channels:
        if cfg.channels == 3 and images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        elif cfg.channels == 1 and images.shape[-1] == 3:
            images = tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(images, tf.float32))), tf.uint8).numpy()
        else:
            raise DataError(f"cannot convert {images.shape[-1]}-channel images to {cfg.channels} channels")
    if cfg.image_size and images.shape[1:3] != (cfg.image_size, cfg.image_size):
        resized = tf.image.resize(images, (cfg.image_size, cfg.image_size), antialias=True)
        images = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()
    return dataclasses.replace(image_set, images=images)


def channel_stats(images):
    """Per-channel mean and variance of uint8 training images (for the model's Normalization)."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return x.mean(axis=0).tolist(), x.var(axis=0).tolist()


def augment_batch(images, seed, cfg):
    """Flip, pad-and-crop and colour jitter a float batch, every draw a stateless function of `seed`."""
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if cfg.flip:
        flip = tf.random.stateless_uniform([b, 1, 1, 1], seeds[0]) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    if cfg.crop_padding:
        p = cfg.crop_padding
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        offsets = tf.random.stateless_uniform([b, 2], seeds[1], 0, 2 * p + 1, dtype=tf.int32)
        hp, wp = tf.cast(h + 2 * p - 1, tf.float32), tf.cast(w + 2 * p - 1, tf.float32)
        y0, x0 = tf.cast(offsets[:, 0], tf.float32), tf.cast(offsets[:, 1], tf.float32)
        boxes = tf.stack([y0 / hp, x0 / wp, (y0 + tf.cast(h - 1, tf.float32)) / hp, (x0 + tf.cast(w - 1, tf.float32)) / wp], axis=1)
        images = tf.image.crop_and_resize(padded, boxes, tf.range(b), tf.stack([h, w]))  # integer-aligned: exact crops
    if cfg.color_jitter:
        images = color_jitter(images, seeds[2], cfg.color_jitter)
    return images


def color_jitter(images, seed, strength):
    """Random brightness, contrast (and saturation for RGB) per image of a float 0..255 batch."""
    b, s = tf.shape(images)[0], strength
    seeds = tf.random.experimental.stateless_split(seed, 3)
    brightness = tf.random.stateless_uniform([b, 1, 1, 1], seeds[0], -s, s) * 255.0
    contrast = tf.random.stateless_uniform([b, 1, 1, 1], seeds[1], 1 - s, 1 + s)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * contrast + mean + brightness
    if images.shape[-1] == 3:
        grey = tf.reduce_mean(images, axis=-1, keepdims=True)
        saturation = tf.random.stateless_uniform([b, 1, 1, 1], seeds[2], 1 - s, 1 + s)
        images = (images - grey) * saturation + grey
    return tf.clip_by_value(images, 0.0, 255.0)


def train_epoch(image_set, cfg, batch_size, seed, epoch):
    """One training epoch of (float images 0..255, one-hot labels) batches; `epoch` may be a tensor."""
    n = len(image_set.labels)
    check_one_batch(n, batch_size)
    images = tf.constant(image_set.images)
    labels = tf.one_hot(image_set.labels, len(image_set.class_names))
    epoch = tf.cast(epoch, tf.int64)
    order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))

    def make_batch(step, index):
        x = tf.cast(tf.gather(images, index), tf.float32)
        x = augment_batch(x, tf.stack([epoch * 1_000_003 + step, tf.cast(seed, tf.int64)]), cfg)
        return x, tf.gather(labels, index)

    ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True).enumerate()
    return ds.map(make_batch, num_parallel_calls=2, deterministic=True)  # 2 cores; see pipeline_options


def eval_batches(image_set, batch_size):
    """Deterministic (float images, one-hot labels) batches of a held-out split."""
    images = tf.cast(tf.constant(image_set.images), tf.float32)
    labels = tf.one_hot(image_set.labels, len(image_set.class_names))
    return finish(tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size))
