"""Image-classification pipelines: splits, per-batch vectorised augmentation, batching.

Decoded images stay in memory (decode once; on 2 cores prefetch barely overlaps), and the order
and augmentation of training epoch `e` are stateless functions of (seed, e): a resumed run reads
exactly the batches an uninterrupted one would, without checkpointing an iterator.
"""
import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from data.errors import DataError
from data.fields import field
from data.images.sources import EMBEDDED, ImageSet, load_class_folder, load_embedded, load_idx_folder, load_tfds, seeded_split
from data.pipeline_options import finish

SOURCES = ["fashion_mnist", "mnist", "idx", "folder", "tfds"]


@dataclasses.dataclass
class ImageDataConfig:
    source: str = field("fashion_mnist", "embedded set, or where images come from", SOURCES)
    path: Optional[str] = field(None, "folder of class sub-folders (source folder) or of IDX files (source idx)")
    tfds_name: Optional[str] = field(None, "tfds data set name (source tfds)")
    data_dir: Optional[str] = field(None, "tfds data_dir holding the prepared set (source tfds)")
    image_size: Optional[int] = field(None, "resize images to N x N (none: the source's own size; folders: 32)")
    channels: Optional[int] = field(None, "1 or 3 (none: the source's own)")
    val_fraction: float = field(0.1, "share of the training images held out for validation")
    test_fraction: float = field(0.1, "share held out for test when the source has no test split")
    limit: Optional[int] = field(None, "use only the first N training images (quick runs)")
    skip_bad_files: bool = field(False, "skip unreadable image files (with a count) instead of stopping")
    flip: bool = field(True, "random horizontal flips")
    crop_padding: int = field(2, "random crops after padding by N pixels (0: off)")
    color_jitter: float = field(0.0, "random brightness/contrast (and saturation) strength, 0..1")


def load_splits(cfg, seed):
    """{'train', 'val', 'test'} ImageSets for a data config; class names shared by all."""
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
        sets["train"] = sets["train"].take(np.arange(min(cfg.limit, len(sets["train"].labels))))
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
    return ImageSet(images, image_set.labels, image_set.class_names)


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
    if n < batch_size:
        raise DataError(f"the training split has {n} images, fewer than one batch of {batch_size}")
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
