"""Segmentation pipelines: splits, random scale-and-crop per image, per-batch augmentation of image and mask together.

Decoded images and masks stay in memory (packed once per set into two flat uint8 buffers, so images
of any size share one tensor), and training epoch `e` is a stateless function of (seed, e): a
resumed run reads exactly the batches an uninterrupted one would. Masks are only ever resampled
with nearest-neighbour; padding is image 0, mask 255 (ignore).

    cfg = SegmentationDataConfig(crop_size=64, train_scenes=40)
    splits = load_segmentation_splits(cfg, seed=0)
    for images, masks in train_epoch(splits["train"], cfg, batch_size=8, seed=0, epoch=0):
        ...  # float32 [8, 64, 64, 3] 0..255, int32 [8, 64, 64] ids, 255 = ignore
"""
import dataclasses
import math
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from data.errors import DataError, check_one_batch
from data.fields import field
from data.generated.mask_scenes import OBJECTS, make_mask_scenes
from data.images.pipeline import color_jitter
from data.masks.sources import (IGNORE, list_mask_folder, load_mask_folder, load_tfds_segmentation,
                                load_voc_segmentation, shrink_image, shrink_mask, voc_image_ids)
from data.pipeline_options import finish
from data.split_record import new_record, recorded_or_fresh, report_new
from data.tfds_sets import open_tfds

SOURCES = ["scenes", "folder", "voc", "tfds"]
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class SegmentationDataConfig:
    source: str = field("scenes", "generated scenes (offline default), or where images and masks come from", SOURCES)
    path: Optional[str] = field(None, "folder: holding images/ and masks/ (or image/ and label/); voc: the VOC year folder")
    tfds_name: Optional[str] = field(None, "tfds segmentation set, e.g. oxford_iiit_pet (source tfds)")
    data_dir: Optional[str] = field(None, "tfds data_dir holding the prepared set (source tfds)")
    image_set: str = field("train", "voc: the ImageSets/Segmentation list split into train and val")
    test_image_set: str = field("val", "voc: the ImageSets/Segmentation list used as the test split")
    scene_objects: str = field("fashion", "scenes: what the objects are (fashion: 4 groups of Fashion-MNIST items)", list(OBJECTS))
    scene_size: int = field(128, "scenes: side of the generated scenes", min=32)
    train_scenes: int = field(1000, "scenes: training scenes", min=1)
    val_scenes: int = field(100, "scenes: validation scenes", min=0)
    test_scenes: int = field(200, "scenes: held-out test scenes (objects from the embedded test images)", min=1)
    crop_size: int = field(128, "side of the random training crops (a multiple of 32; smaller images are padded)", min=32)
    max_side: Optional[int] = field(None, "shrink images whose long side is larger to this as they are read (masks "
                                          "nearest-neighbour); evaluate, predict and the export shrink the same way and "
                                          "return masks at each input's own size (none: full size)", min=32)
    val_fraction: float = field(0.1, "folder/voc/tfds: share of the training images held out for validation", min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = field(0.2, "folder: share held out for test (voc: its test_image_set; tfds: its test split)", min=0.0, max=1.0, max_exclusive=True)
    limit: Optional[int] = field(None, "use only the first N training images (quick runs)", min=1)
    flip: bool = field(True, "random horizontal flips")
    rotate90: bool = field(False, "random rotations by 0/90/180/270 degrees (for top-down images: cells, tissue, aerial)")
    scale: float = field(0.25, "random scale in [1-scale, 1+scale] before the crop (0: off)", min=0.0, max=1.0, max_exclusive=True)
    elastic: float = field(0.0, "elastic deformation strength (alpha of keras.ops.image.elastic_transform: the "
                                "displacement per axis has a std of about 0.27*alpha pixels; 0: off; e.g. 30 for tiny sets)", min=0.0)
    elastic_sigma: float = field(16.0, "smoothness of the elastic displacement field (Gaussian sigma in pixels; "
                                       "below about alpha/3 the deformation folds)", min=1.0)
    color_jitter: float = field(0.1, "random brightness/contrast/saturation strength of the image, 0..1", min=0.0, max=1.0)


# ---- splits ----

def load_segmentation_splits(cfg, seed, record=None, names=SPLITS):
    """{'train', 'val', 'test'} MaskSets (only `names`); 'val' may be None (no validation images).

    With `record`, the run's split record (data.split_record, made by `split_record`), a folder or VOC
    source gives exactly the recorded images, whatever was added or removed since; data flags that would
    change them are refused. Scenes and tfds sets record only their identity: their splits are fixed."""
    if cfg.crop_size % 32:
        raise DataError(f"data.crop_size must be a multiple of 32, got {cfg.crop_size}")
    return recorded_or_fresh(record, cfg.source, split_recipe(cfg, seed), lambda: _recorded_splits(cfg, record, names),
                             lambda: _new_splits(cfg, seed, names))


def _new_splits(cfg, seed, names):
    if cfg.source == "scenes":  # each split generated on its own: evaluate makes only the test scenes
        return {name: _scene_split(cfg, seed, name) for name in names}
    sets = _fresh_splits(cfg, seed)
    return {name: sets[name] for name in names}


def split_recipe(cfg, seed):
    """The data flags that decide which images each split holds (for scenes and tfds, what names the set)."""
    if cfg.source == "scenes":
        return {"source": cfg.source, "scene_objects": cfg.scene_objects, "scene_size": cfg.scene_size}
    if cfg.source == "tfds":
        return {"source": cfg.source, "tfds_name": cfg.tfds_name}
    recipe = {"source": cfg.source, "seed": seed, "val_fraction": cfg.val_fraction, "limit": cfg.limit}
    if cfg.source == "voc":
        return {**recipe, "image_set": cfg.image_set, "test_image_set": cfg.test_image_set}
    return {**recipe, "test_fraction": cfg.test_fraction}


def _all_member_keys(cfg):
    """Every image of the data set now (its relative path), nothing decoded."""
    if cfg.source == "folder":
        return list_mask_folder(cfg.path)
    ids = voc_image_ids(cfg.path, cfg.image_set) + voc_image_ids(cfg.path, cfg.test_image_set)
    return [f"JPEGImages/{i}.jpg" for i in dict.fromkeys(ids)]


def split_record(cfg, seed, sets):
    """The split record of freshly made splits: each split's image paths (relative to the data folder) of
    a folder or VOC source; only the identity of generated scenes and tfds sets."""
    class_names = sets["train"].class_names
    if cfg.source not in ("folder", "voc"):
        return new_record(cfg.source, split_recipe(cfg, seed), class_names)
    members = {name: list(s.files) if s is not None else [] for name, s in sets.items()}
    used = {m for split in members.values() for m in split}
    record = new_record(cfg.source, split_recipe(cfg, seed), class_names, members,
                        [k for k in _all_member_keys(cfg) if k not in used])
    return {**record, "binary_masks": sets["train"].binary}


def _required(value, key, source):
    if not value:
        raise DataError(f"source {source} needs --data.{key}")
    return value


def _recorded_splits(cfg, record, names):
    path = _required(cfg.path, "path", cfg.source)
    known = {m for split in record["members"].values() for m in split} | set(record["unused"])
    report_new(sum(k not in known for k in _all_member_keys(cfg)), f"image(s) under {path}")
    sets = {}
    for name in names:
        members = record["members"][name]
        if name == "val" and not members:
            sets[name] = None
        elif cfg.source == "folder":
            sets[name] = load_mask_folder(path, record["class_names"], members, name, cfg.max_side,
                                          record.get("binary_masks"))  # None in records from before it was kept
        else:
            sets[name] = load_voc_segmentation(path, None, members, name, cfg.max_side)
    return sets


def _scene_split(cfg, seed, name):
    make = lambda count, s, split: _shrunk(make_mask_scenes(count, s, cfg.scene_size, cfg.scene_objects, split), cfg)
    if name == "train":
        return make(cfg.limit or cfg.train_scenes, seed, "train")
    if name == "val":
        return make(cfg.val_scenes, seed + 1, "train") if cfg.val_scenes else None
    return make(cfg.test_scenes, seed + 2, "test")


def _shrunk(mset, cfg):
    """Generated scenes under --data.max_side too, as a file source's images are read."""
    if not cfg.max_side or cfg.max_side >= cfg.scene_size:
        return mset
    return dataclasses.replace(mset, images=[shrink_image(i, cfg.max_side) for i in mset.images],
                               masks=[shrink_mask(m, cfg.max_side) for m in mset.masks])


def seeded_split(mset, fractions, seed):
    """Split into len(fractions)+1 parts by a seeded permutation: the fractions first, the remainder last."""
    order = np.random.default_rng(seed).permutation(len(mset))
    parts, start = [], 0
    for frac in fractions:
        n = int(round(frac * len(mset)))
        parts.append(np.sort(order[start:start + n]))
        start += n
    parts.append(np.sort(order[start:]))
    return [mset.take(p) for p in parts]


def _tfds_test_split(name, data_dir):
    splits = open_tfds(name, data_dir, "train").info.splits
    for split in ("test", "validation"):
        if split in splits:
            return split
    raise DataError(f"tfds data set {name!r} has no test or validation split (has {', '.join(splits)})")


def _fresh_splits(cfg, seed):
    if cfg.source == "folder":
        test, full = seeded_split(load_mask_folder(_required(cfg.path, "path", "folder"), max_side=cfg.max_side),
                                  [cfg.test_fraction], seed)
    elif cfg.source == "voc":
        path = _required(cfg.path, "path", "voc")
        shared = sorted(set(voc_image_ids(path, cfg.image_set)) & set(voc_image_ids(path, cfg.test_image_set)))
        if shared:  # trainval and val: the test images would be trained on, and the score mean nothing
            raise DataError(f"--data.image_set {cfg.image_set} and --data.test_image_set {cfg.test_image_set} share "
                            f"{len(shared)} image(s) (e.g. {shared[0]}): the test images must not be trained on; "
                            "choose sets that do not overlap (e.g. train and val)")
        full, test = (load_voc_segmentation(path, s, max_side=cfg.max_side) for s in (cfg.image_set, cfg.test_image_set))
    elif cfg.source == "tfds":
        name = _required(cfg.tfds_name, "tfds_name", "tfds (e.g. oxford_iiit_pet)")
        full = load_tfds_segmentation(name, cfg.data_dir, "train", cfg.max_side)
        test = load_tfds_segmentation(name, cfg.data_dir, _tfds_test_split(name, cfg.data_dir), cfg.max_side)
        names = max(full.class_names, test.class_names, key=len)  # class_<id> up to each split's own largest id
        full, test = (dataclasses.replace(s, class_names=names) for s in (full, test))
    else:
        raise DataError(f"unknown data source {cfg.source!r}; choose one of {', '.join(SOURCES)}")
    val, train = seeded_split(full, [cfg.val_fraction], seed + 1) if cfg.val_fraction else (None, full)
    if cfg.limit:
        train = train.take(np.arange(min(cfg.limit, len(train))))
    for name, s in (("train", train), ("test", test)):
        if not len(s):
            raise DataError(f"the {name} split of source {cfg.source!r} is empty")
    return {"train": train, "val": val if val is not None and len(val) else None, "test": test}


# ---- tensors ----

def _packed(mset):
    """(flat images, flat masks, per-image [pixel offset, h, w]) of a set, made once and kept on the set."""
    if "packed" not in mset.cache:
        shapes = np.array([m.shape for m in mset.masks], np.int64).reshape(-1, 2)
        offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])[:-1]]).astype(np.int64)
        images = np.concatenate([im.reshape(-1) for im in mset.images]) if len(mset) else np.zeros(0, np.uint8)
        masks = np.concatenate([m.reshape(-1) for m in mset.masks]) if len(mset) else np.zeros(0, np.uint8)
        mset.cache["packed"] = (tf.constant(images), tf.constant(masks),
                                tf.constant(np.concatenate([offsets[:, None], shapes], axis=1)))
    return mset.cache["packed"]


def _unpack(packed, index):
    """Image uint8 [h, w, 3] and mask uint8 [h, w] number `index` of a packed set."""
    images, masks, where = packed
    start, h, w = where[index][0], where[index][1], where[index][2]
    image = tf.reshape(images[start * 3:(start + h * w) * 3], tf.stack([h, w, 3]))
    return image, tf.reshape(masks[start:start + h * w], tf.stack([h, w]))


def scale_and_crop(image, mask, seed, size, scale):
    """A random (size x size) window of one image and mask, zoomed by a random s in [1-scale, 1+scale]
    (s > 1 zooms in); where the window leaves the image (small images, zooming out) the image is 0 and
    the mask 255. Without scale, a plain integer crop (and pad): exact pixels."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    u = tf.random.stateless_uniform([2], seeds[1])
    if not scale:
        hw = tf.shape(mask)[:2]
        short = tf.maximum(size - hw, 0)  # padding needed, placed at random around the image
        before = tf.cast(tf.floor(u * tf.cast(short + 1, tf.float32)), tf.int32)
        pads = tf.stack([before, short - before], axis=1)
        image = tf.pad(image, tf.concat([pads, [[0, 0]]], axis=0))
        mask = tf.pad(mask, pads, constant_values=IGNORE)
        room = tf.shape(mask)[:2] - size
        start = tf.cast(tf.floor(u * tf.cast(room + 1, tf.float32)), tf.int32)
        return (tf.cast(tf.slice(image, tf.concat([start, [0]], 0), [size, size, 3]), tf.float32),
                tf.cast(tf.slice(mask, start, [size, size]), tf.int32))
    hw = tf.cast(tf.shape(mask)[:2], tf.float32)
    s = tf.random.stateless_uniform([], seeds[0], 1 - scale, 1 + scale)
    window = size / s  # source pixels the crop covers
    room = hw - window
    start = tf.minimum(room, 0.0) + u * tf.abs(room)
    # crop_and_resize samples pixel centres: map the first and last output centre into the image
    first = start + 0.5 * window / size - 0.5
    last = start + (size - 0.5) * window / size - 0.5
    box = tf.concat([first, last], axis=0) / tf.tile(tf.maximum(hw - 1, 1.0), [2])
    crop = lambda x, method, fill: tf.image.crop_and_resize(x[None], box[None], [0], [size, size], method=method,
                                                           extrapolation_value=fill)[0]
    return crop(image, "bilinear", 0.0), tf.cast(crop(mask[..., None], "nearest", float(IGNORE))[..., 0], tf.int32)


class _TensorSeed(keras.random.SeedGenerator):
    """A seed tensor where keras.ops.image.elastic_transform wants an int or SeedGenerator: the int must be a
    Python constant and a SeedGenerator holds a variable, neither of which a stateless tf.data map has."""

    def __init__(self, seed):  # no variable: next() returns the given seed
        self.seed = seed

    def next(self, ordered=True):
        return self.seed


def elastic_field(batch, height, width, seed, alpha, sigma):
    """Source coordinates [batch, height, width, 2] (y, x) of a random smooth elastic deformation whose
    displacement per axis has a std of about 0.27 * alpha pixels and a correlation length of `sigma`.

    keras.ops.image.elastic_transform makes it, applied to coordinate ramps: what it returns is where
    each output pixel samples. Two details of that op are worked around: it draws the x and y
    displacements from one seed (alone it moves pixels along the diagonal only), so the field is two
    calls, the second on mirrored ramps (displacements along both diagonals, independent per axis);
    and it blurs with a full 2-D (6 sigma)^2 kernel, so the field is made at 1/f resolution (f = sigma/2)
    and upsampled: the same smooth field, about f^4 times cheaper (1 s -> ms per batch of 8 at 128)."""
    f = max(1, int(sigma // 2))
    h, w = -(-height // f), -(-width // f)
    # One wide image holding the batch's fields side by side: keras loops over the batch in Python (a
    # graph per image); displacements are measured from one global ramp, so they are smooth across tiles.
    ramps = tf.stack(tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(batch * w, dtype=tf.float32), indexing="ij"), axis=-1)[None]
    coords = ramps
    for i, pass_seed in enumerate(tf.unstack(tf.random.experimental.stateless_split(seed, 2))):
        mirror = (lambda x: tf.reverse(x, axis=[2])) if i else (lambda x: x)
        coords = mirror(keras.ops.image.elastic_transform(mirror(coords), alpha=alpha / f / math.sqrt(2.0), sigma=sigma / f,
                                                          interpolation="bilinear", fill_mode="reflect",
                                                          seed=_TensorSeed(pass_seed)))
    shift = tf.transpose(tf.reshape((coords - ramps) * f, [h, batch, w, 2]), [1, 0, 2, 3])
    shift = tf.image.resize(shift, [height, width], method="bilinear")
    full = tf.stack(tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"), axis=-1)
    return full + shift


def _reflect(c, n):
    """Coordinates reflected into [0, n - 1] about the edge pixels (d c b a | a b c d | d c b a)."""
    n = tf.cast(n, c.dtype)
    c = tf.math.floormod(c + 0.5, 2 * n) - 0.5
    return tf.clip_by_value(tf.where(c > n - 0.5, 2 * n - 1 - c, c), 0.0, n - 1)


def elastic(images, masks, seed, alpha, sigma):
    """Elastic deformation of a float batch [B, H, W, C] and its int masks [B, H, W] by one field
    (`elastic_field`): the image sampled bilinearly, the mask by nearest neighbour, so its ids stay exact;
    beyond the borders both reflect. (Sampled with gather_nd: keras's map_coordinates on a 4-D batch
    interpolates along the batch and channel axes too, 16 gathers instead of 4.)"""
    b, height, width, _ = images.shape
    if b is None:
        raise ValueError("elastic needs a static batch size (batch with drop_remainder=True)")
    coords = elastic_field(b, height, width, seed, alpha, sigma)
    y, x = _reflect(coords[..., 0], height), _reflect(coords[..., 1], width)
    y0, x0 = tf.floor(y), tf.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1, x1 = tf.minimum(y0 + 1, height - 1), tf.minimum(x0 + 1, width - 1)
    at = lambda t, yy, xx: tf.gather_nd(t, tf.stack([yy, xx], axis=-1), batch_dims=1)
    top = at(images, y0, x0) * (1 - wx) + at(images, y0, x1) * wx
    bottom = at(images, y1, x0) * (1 - wx) + at(images, y1, x1) * wx
    nearest = lambda c: tf.cast(tf.round(c), tf.int32)
    return top * (1 - wy) + bottom * wy, at(masks, nearest(y), nearest(x))


def augment_batch(images, masks, seed, cfg):
    """Flip, rotate by 90 degrees and elastically deform a float batch [B, S, S, 3] and its int masks [B, S, S]
    with the same draws, then colour-jitter the images only. Every draw is a function of `seed`."""
    b = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    both = lambda fn, pick: (tf.where(pick[:, None, None, None], fn(images), images),
                             tf.where(pick[:, None, None], fn(masks[..., None])[..., 0], masks))
    if cfg.flip:
        images, masks = both(lambda x: tf.reverse(x, axis=[2]), tf.random.stateless_uniform([b], seeds[0]) < 0.5)
    if cfg.rotate90:  # k quarter turns counter-clockwise (np.rot90): transpose if k is odd, then flip rows / columns
        k = tf.random.stateless_uniform([b], seeds[1], 0, 4, dtype=tf.int32)
        images, masks = both(lambda x: tf.transpose(x, [0, 2, 1, 3]), k % 2 == 1)
        images, masks = both(lambda x: tf.reverse(x, axis=[1]), (k == 1) | (k == 2))
        images, masks = both(lambda x: tf.reverse(x, axis=[2]), (k == 2) | (k == 3))
    if cfg.elastic:
        images, masks = elastic(images, masks, seeds[2], cfg.elastic, cfg.elastic_sigma)
    if cfg.color_jitter:
        images = color_jitter(images, seeds[3], cfg.color_jitter)
    return images, masks


def train_epoch(mset, cfg, batch_size, seed, epoch):
    """One epoch of (float32 images [B, S, S, 3] 0..255, int32 masks [B, S, S], 255 = ignore) batches,
    S = cfg.crop_size; order and augmentation a function of (seed, epoch). `epoch` may be a tensor."""
    n, size = len(mset), cfg.crop_size
    if size % 32:
        raise DataError(f"data.crop_size must be a multiple of 32, got {size}")
    check_one_batch(n, batch_size)
    packed = _packed(mset)
    epoch, seed = tf.cast(epoch, tf.int64), tf.cast(seed, tf.int64)
    order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))

    def crop(position, index):
        image, mask = _unpack(packed, index)
        return scale_and_crop(image, mask, tf.stack([epoch * 1_000_003 + position, seed + 7]), size, cfg.scale)

    def augment(step, batch):
        return augment_batch(*batch, tf.stack([epoch * 1_000_003 + step, seed]), cfg)

    ds = tf.data.Dataset.from_tensor_slices(order).enumerate().map(crop, num_parallel_calls=2, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).enumerate()
    return ds.map(augment, num_parallel_calls=2, deterministic=True)  # 2 cores; see pipeline_options


VAL_PIXELS = 2048 * 2048  # padded pixels in one validation batch (whole images up to it, central windows beyond)


def validation_batches(mset, batch_size, stride, max_pixels=VAL_PIXELS):
    """Validation batches for fit(): each image and mask padded (image 0, mask 255 = ignore) to the split's largest
    height and width rounded up to `stride`, so that the batches have one shape and one trace. A batch holds at
    most `max_pixels` (fewer images than `batch_size` if need be), and images larger than that are cut to their
    central window, said once: validation of 4000x3000 photos ran out of memory. evaluate scores whole images."""
    h = -(-max(m.shape[0] for m in mset.masks) // stride) * stride
    w = -(-max(m.shape[1] for m in mset.masks) // stride) * stride
    if h * w > max_pixels:
        side = max(stride, math.isqrt(max_pixels) // stride * stride)
        h, w = min(h, side), min(w, side)
        print(f"note: validation scores the central {h}x{w} of images larger than that (evaluate: whole images)")
    images = np.zeros((len(mset), h, w, 3), np.uint8)
    masks = np.full((len(mset), h, w), IGNORE, np.uint8)
    for i, (image, mask) in enumerate(zip(mset.images, mset.masks)):
        top, left = max(0, (mask.shape[0] - h) // 2), max(0, (mask.shape[1] - w) // 2)
        window = (slice(top, top + h), slice(left, left + w))
        images[i, :min(h, mask.shape[0]), :min(w, mask.shape[1])] = image[window]
        masks[i, :min(h, mask.shape[0]), :min(w, mask.shape[1])] = mask[window]
    batch = max(1, min(batch_size, max_pixels // (h * w)))
    ds = tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch)
    return finish(ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.int32))))
