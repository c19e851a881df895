"""Training data of the feed-forward style models: random square crops of content photos (and, for
AdaIN, of style images), each epoch a pure function of (seed, epoch), and the held-out photos.

An epoch is `crops_per_epoch` crops, spread evenly over the training photos, so that three photos and
three thousand give epochs of one length. A crop is a random square of 2/3 to all of a photo's short
side (photos are held with the short side at 1.5 x image_size), resized to image_size, flipped half the
time: scale and position vary, and the net sees the brush strokes at several sizes.

The split of the content photos made at a run's first training is recorded (split_record, data.split_record):
a resumed run and `evaluate` read exactly those photos back (load_photo_split), whatever was added since.
"""
import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from data.errors import DataError
from data.fields import field
from data.pipeline_options import finish
from data.images.files import decode_image
from data.split_record import new_record, recorded_or_fresh, report_gone, report_new
from data.style.sources import (EMBEDDED, EMBEDDED_PHOTOS, EMBEDDED_STYLES, embedded_image, held_picture, load_pictures,
                                picture_paths, readable_pictures, stack_padded)

HOLD_SCALE = 1.5  # photos are held with the short side at this times image_size
HELD_BYTES = 1 << 30  # photos are held decoded up to this many bytes (padded to the largest), else streamed


@dataclasses.dataclass
class StyleDataConfig:
    content: str = field(EMBEDDED, "content photos: 'embedded' (3 photos) or a folder of photos, searched recursively")
    styles: str = field(EMBEDDED, "AdaIN training styles: 'embedded' (2 paintings) or a folder of images")
    image_size: int = field(256, "side of the square training crops in pixels (a multiple of 8)", min=32)
    crops_per_epoch: int = field(400, "training crops per epoch, spread evenly over the photos", min=1)
    held_out: float = field(0.1, "share of the content photos held out for validation and evaluate (at least one "
                                 "when there are two or more)", min=0.0, max=1.0, max_exclusive=True)
    max_photos: Optional[int] = field(None, "use at most N content photos (a seeded sample)", min=1)
    skip_bad_files: bool = field(False, "skip unreadable image files (with a count) instead of stopping")

    def check(self, prefix=""):
        if self.image_size % 8:
            raise ValueError(f"config key '{prefix}image_size' ({self.image_size}) must be a multiple of 8 (the "
                             "networks downsample by 8 at most)")


@dataclasses.dataclass
class Photos:
    images: Optional[np.ndarray]  # uint8 [n, H, W, 3], zero-padded; None: read from `paths` for each crop
    sizes: Optional[np.ndarray]  # int32 [n, 2]: each photo's own (h, w)
    paths: list
    side: int = 0  # the short side photos are held at

    def tensors(self):
        """The same, with the pixels (or the paths) as tensors for a pipeline."""
        if self.images is None:
            return Photos(None, None, tf.constant([str(p) for p in self.paths]), self.side)
        return Photos(tf.constant(self.images), tf.constant(self.sizes), self.paths, self.side)

    def photo(self, index):
        """uint8 [h, w, 3] of photo `index` as held (a traced function of the index)."""
        if self.images is None:
            return held_picture(decode_image(tf.io.read_file(self.paths[index]), 3), self.side)
        return self.images[index, :self.sizes[index, 0], :self.sizes[index, 1]]


def split_photos(cfg, seed):
    """{"train": paths, "val": paths}: a seeded split of the content photos (sorted first, so it does not
    depend on the order a file system lists them in)."""
    paths = sorted(picture_paths(cfg.content, EMBEDDED_PHOTOS, "content"))
    rng = np.random.default_rng(seed)
    if cfg.max_photos and len(paths) > cfg.max_photos:
        paths = sorted(rng.choice(paths, cfg.max_photos, replace=False).tolist())
    held = 0 if len(paths) < 2 else max(1, round(cfg.held_out * len(paths))) if cfg.held_out else 0
    order = rng.permutation(len(paths))
    return {"train": [paths[i] for i in sorted(order[held:])], "val": [paths[i] for i in sorted(order[:held])]}


def content_source(content):
    """How --data.content names the photos: 'embedded', 'file' (one photo) or 'folder' (also a path not found:
    the folder's own check names it)."""
    if content == EMBEDDED:
        return "embedded"
    return "file" if Path(content).is_file() else "folder"


def split_recipe(cfg, seed):
    """The data flags that decide which photos each split holds (not where the folder is: it may move)."""
    return {"seed": seed, "held_out": cfg.held_out, "max_photos": cfg.max_photos}


def split_record(cfg, seed, split):
    """The run's split record of a fresh split: each photo by its embedded name, its path relative to the
    content folder, or (one file) its resolved path; the photos of the source in no split (--data.max_photos)."""
    source = content_source(cfg.content)
    members = {name: [{"path": _member(p, cfg.content, source)} for p in split[name]] for name in ("train", "val")}
    used = {m["path"] for name in members for m in members[name]}
    return new_record(source, split_recipe(cfg, seed), [], members, [m for m in _present(cfg, source) if m not in used])


def load_photo_split(cfg, seed, record=None):
    """{"train": paths, "val": paths}: exactly the recorded photos when the run has a split record of this
    source (added photos counted and left out, gone ones reported; flags that would change the split
    refused), else a fresh split_photos."""
    source = content_source(cfg.content)
    return recorded_or_fresh(record, source, split_recipe(cfg, seed), lambda: _recorded_split(cfg, record, source),
                             lambda: split_photos(cfg, seed))


def _member(path, content, source):
    if source == "embedded":
        return Path(path).stem
    if source == "file":
        return str(Path(path).resolve())
    return Path(path).relative_to(content).as_posix()


def _member_path(member, content, source):
    """A recorded member's file: an embedded name, a path relative to the folder, or an absolute path."""
    if source == "embedded" and member in EMBEDDED_PHOTOS:
        return embedded_image(member)
    return Path(content) / member if source == "folder" else Path(member)


def _present(cfg, source):
    return [_member(p, cfg.content, source) for p in picture_paths(cfg.content, EMBEDDED_PHOTOS, "content")]


def _recorded_split(cfg, record, source):
    if source == "folder" and not Path(cfg.content).is_dir():
        raise DataError(f"content not found: {cfg.content} (the run's photos are recorded relative to the folder it "
                        "trained on: name that folder with --data.content)")
    members = record["members"]
    known = {m["path"] for name in members for m in members[name]} | set(record["unused"])
    report_new(sum(m not in known for m in _present(cfg, source)), f"photo(s) under {cfg.content}")
    split = {}
    for name in ("train", "val"):
        paths = [_member_path(m["path"], cfg.content, source) for m in members[name]]
        gone = [str(p) for p in paths if not p.is_file()]
        if gone and len(gone) == len(paths):
            raise DataError(f"all {len(paths)} photo(s) of the run's {name} split are gone from {cfg.content}, e.g. "
                            f"{gone[0]}; point --data.content at the photos the run was trained on")
        report_gone(name, gone, len(paths), cfg.content)
        split[name] = [p for p in paths if p.is_file()]
    return split


def load_photos(paths, cfg, what="content"):
    """Photos of the readable `paths`: decoded and held when at most HELD_BYTES, else read when cropped."""
    if not paths:
        return None
    kept, side = readable_pictures(paths, cfg.skip_bad_files, what), round(HOLD_SCALE * cfg.image_size)
    if len(kept) * (2 * side) ** 2 * 3 > HELD_BYTES:  # padded, each at most 2 x side square
        print(f"{len(kept)} {what} images: read from their files for each crop (held decoded they would take more "
              f"than {HELD_BYTES >> 20} MB)")
        return Photos(None, None, kept, side)
    return Photos(*stack_padded(load_pictures(kept, side)), kept, side)


def load_styles(cfg):
    """The AdaIN training styles, held like the photos."""
    return load_photos(picture_paths(cfg.styles, EMBEDDED_STYLES, "style"), cfg, "style")


def _crop(photos, index, seed, size, random=True):
    """A float32 [size, size, 3] square crop of photo `index` (random: scale, place, flip by `seed`;
    else the centre square of the whole short side)."""
    photo = photos.photo(tf.cast(index, tf.int32))
    h, w = tf.shape(photo)[0], tf.shape(photo)[1]
    short = tf.minimum(h, w)
    if random:
        scale_seed, top_seed, left_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
        low = tf.cast(short, tf.float32) / HOLD_SCALE
        side = tf.cast(tf.random.stateless_uniform([], scale_seed, low, tf.cast(short, tf.float32) + 1), tf.int32)
        side = tf.minimum(side, short)
        top = tf.random.stateless_uniform([], top_seed, 0, h - side + 1, tf.int32)
        left = tf.random.stateless_uniform([], left_seed, 0, w - side + 1, tf.int32)
    else:
        side = short
        top, left = (h - side) // 2, (w - side) // 2
    crop = photo[top:top + side, left:left + side]
    crop = tf.image.resize(tf.cast(crop, tf.float32), (size, size), antialias=True)
    if random:
        crop = tf.cond(tf.random.stateless_uniform([], flip_seed) < 0.5, lambda: tf.reverse(crop, [1]), lambda: crop)
    return tf.clip_by_value(crop, 0.0, 255.0)


def train_epoch(photos, cfg, batch_size, seed, epoch, styles=None):
    """One epoch of training batches: (content, content) for a one-style model (the loss compares the
    output with its input), or {"content", "style", "strength"} for AdaIN (`styles` given)."""
    if photos is None:
        raise DataError("no training photos: every content photo is held out (lower --data.held_out)")
    images, style_set = photos.tensors(), styles.tensors() if styles else None
    n = len(photos.paths)
    epoch = tf.cast(epoch, tf.int64)
    order_seed = tf.stack([epoch, tf.constant(seed, tf.int64)])
    order = tf.random.experimental.stateless_shuffle(tf.range(cfg.crops_per_epoch) % n, order_seed)
    steps = cfg.crops_per_epoch // batch_size

    def example(k):
        crop_seed = tf.stack([epoch * 1_000_003 + k, tf.constant(seed + 1, tf.int64)])
        content = _crop(images, order[k], crop_seed, cfg.image_size)
        if style_set is None:
            return content, content
        pick_seed, style_seed = tf.unstack(tf.random.experimental.stateless_split(crop_seed + [0, 7_919], 2))
        which = tf.random.stateless_uniform([], pick_seed, 0, len(style_set.paths), tf.int32)
        return {"content": content, "style": _crop(style_set, which, style_seed, cfg.image_size),
                "strength": tf.constant(1.0)}

    dataset = tf.data.Dataset.range(steps * batch_size).map(example, num_parallel_calls=2, deterministic=True)
    return finish(dataset.batch(batch_size, drop_remainder=True))


def val_batches(photos, cfg, batch_size, styles=None):
    """The held-out photos' centre squares, batched like train_epoch's (each paired with a style in turn),
    in whole batches (see below)."""
    if photos is None:
        return None
    images, style_set = photos.tensors(), styles.tensors() if styles else None

    def example(k):
        content = _crop(images, k, None, cfg.image_size, random=False)
        if style_set is None:
            return content, content
        style = _crop(style_set, k % len(style_set.paths), None, cfg.image_size, random=False)
        return {"content": content, "style": style, "strength": tf.constant(1.0)}

    # Whole batches, the photos repeated in turn to fill the last: a tf.distribute strategy splits each
    # batch across its replicas, and a replica handed no example fails inside Keras' evaluation.
    n = len(photos.paths)
    dataset = tf.data.Dataset.range(-(-n // batch_size) * batch_size).map(lambda k: example(k % n))
    return finish(dataset.batch(batch_size))
