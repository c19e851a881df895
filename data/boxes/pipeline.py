"""Detection pipelines: splits letterboxed once onto a square canvas, box-aware augmentation, batching.

As for classification, decoded canvases stay in memory and training epoch `e` is a stateless
function of (seed, e). Boxes travel padded to a fixed count per image (label -1 = no box).
"""
import dataclasses
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from data.boxes.geometry import box_area, wide_enough
from data.boxes.mosaic import mosaic_batch, real_first
from data.boxes.sources import (Annotated, coco_image_ids, list_voc_files, load_coco, load_tfds_detection, load_voc,
                                on_canvas)
from data.errors import DataError, check_one_batch
from data.fields import field
from data.images.pipeline import color_jitter
from data.pipeline_options import finish
from data.generated.scenes import make_scenes
from data.split_record import new_record, recorded_or_fresh, report_new

SOURCES = ["scenes", "voc", "coco", "tfds"]
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class DetectionDataConfig:
    source: str = field("scenes", "generated scenes (offline default), or where images and boxes come from", SOURCES)
    path: Optional[str] = field(None, "voc: folder holding the .xml files and images; coco: the image folder")
    annotations: Optional[str] = field(None, "coco: the instances JSON file")
    tfds_name: Optional[str] = field(None, "tfds detection set, e.g. voc/2007 or coco/2017 (source tfds)")
    data_dir: Optional[str] = field(None, "tfds data_dir holding the prepared set (source tfds)")
    classes: Optional[str] = field(None, "comma-separated class names: their order, and any other name is an error")
    image_size: Optional[int] = field(None, "square canvas side: images are scaled to fit and padded (a multiple of "
                                            "32; default 128 for generated scenes, 256 for photos)", min=32)
    scene_objects: str = field("mnist", "scenes: embedded images the objects are drawn from", ["mnist", "fashion_mnist"])
    train_scenes: int = field(4000, "scenes: training scenes", min=1)
    val_scenes: int = field(200, "scenes: validation scenes", min=0)
    test_scenes: int = field(500, "scenes: held-out test scenes (objects from the embedded test images)", min=1)
    val_fraction: float = field(0.1, "voc/coco: share of the images held out for validation", min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = field(0.2, "voc/coco: share held out for test (tfds: its validation split)", min=0.0, max=1.0, max_exclusive=True)
    test_fold: int = field(0, "voc/coco: which test_fraction-sized part of the seeded order is the test split "
                              "(cross-validation: 0..1/test_fraction - 1, with the same seed)", min=0)
    limit: Optional[int] = field(None, "use only the first N training images (quick runs)", min=1)
    skip_bad_files: bool = field(False, "skip bad images/annotation files (with a report) instead of stopping")
    flip: bool = field(True, "random horizontal flips")
    zoom: float = field(0.25, "random scale in [1-zoom, 1+zoom] with a random shift (0: off)", min=0.0, max=1.0, max_exclusive=True)
    color_jitter: float = field(0.2, "random brightness/contrast/saturation strength, 0..1", min=0.0, max=1.0)
    min_visible: float = field(0.4, "after a crop, drop boxes with less of their area left inside the canvas", min=0.0, max=1.0)
    mosaic: Optional[float] = field(None, "probability that a training canvas is a mosaic of four images "
                                          "(YOLOv4-style), 0: off (default 0.5 for photos, 0 for generated scenes)",
                                    min=0.0, max=1.0)
    multi_scale: Optional[float] = field(None, "random canvas side per training batch in [1-s, 1+s] x image_size, "
                                               "in steps of 32 (of the coarsest stride if larger; YOLO-style "
                                               "multi-scale training; evaluation and export stay at image_size), "
                                               "0: off (default)",
                                         min=0.0, max=1.0, max_exclusive=True)


@dataclasses.dataclass
class DetectionSet:
    """Letterboxed images and their boxes: canvas pixels for training, image pixels for evaluation."""

    canvas: np.ndarray  # uint8 (n, S, S, 3)
    scale: np.ndarray  # float32 (n, 2): image -> canvas pixels per axis
    image_hw: np.ndarray  # int32 (n, 2)
    boxes: list  # [(k, 4) float32 yxyx in image pixels]
    labels: list  # [(k,) int32]
    crowd: list  # [(k,) bool]
    names: list
    class_names: list
    members: Optional[list] = None  # voc/coco: each image's entry in the split record (relative paths, ids)
    iscrowd: Optional[list] = None  # [(k,) bool]: COCO crowd regions (in `crowd` too), no training targets; None: none

    def __len__(self):
        return len(self.names)

    def take(self, index):
        index = np.asarray(index, int)
        pick = lambda items: [items[i] for i in index]
        return DetectionSet(self.canvas[index], self.scale[index], self.image_hw[index], pick(self.boxes),
                            pick(self.labels), pick(self.crowd), pick(self.names), self.class_names,
                            None if self.members is None else pick(self.members),
                            None if self.iscrowd is None else pick(self.iscrowd))

    def canvas_boxes(self):
        """Each image's boxes in canvas pixels, where the anchors see them: [(k, 4) float32 yxyx]."""
        return [b * np.tile(s, 2) for b, s in zip(self.boxes, self.scale)]

    def targets(self):
        """Each image's training targets: [((k, 4) canvas boxes, (k,) labels)]. COCO crowd regions are left out, as
        torchvision and Detectron2 leave them: one box around many objects is no object to learn (VOC difficult
        objects stay; the mAP ignores both). The data report and the anchor fit count these boxes too."""
        regions = self.iscrowd or [np.zeros(len(b), bool) for b in self.boxes]
        return [(b[~r], lab[~r]) for b, lab, r in zip(self.canvas_boxes(), self.labels, regions)]

    def padded(self, max_boxes=None):
        """Canvas boxes (n, M, 4) and labels (n, M) of the training targets, padded with -1; M = the most of any
        image."""
        targets = self.targets()
        m = max_boxes or max([len(b) for b, _ in targets] + [1])
        boxes = -np.ones((len(self), m, 4), np.float32)
        labels = -np.ones((len(self), m), np.int32)
        for i, (b, lab) in enumerate(targets):
            boxes[i, :len(b)] = b
            labels[i, :len(b)] = lab
        return boxes, labels


def to_detection_set(records, class_names, size):
    """`Annotated` records on (size x size) canvases (letterboxed here unless the reader did: on_canvas)."""
    if not records:
        raise DataError("no annotated images to use")
    records = [on_canvas(r, size) for r in records]
    canvas = np.stack([r.image for r in records])
    scale = np.stack([r.scale for r in records])
    members = [r.member for r in records]
    return DetectionSet(canvas, scale, np.array([r.image_hw for r in records], np.int32),
                        [r.boxes for r in records], [r.labels for r in records], [r.crowd for r in records],
                        [r.name for r in records], list(class_names), None if None in members else members,
                        [np.zeros(len(r.labels), bool) if r.iscrowd is None else r.iscrowd for r in records])


def _scenes(cfg, count, seed, split):
    images, boxes, labels, names = make_scenes(count, seed, cfg.image_size, cfg.scene_objects, split)
    records = [Annotated(f"scene-{split}-{seed}-{i}", im, b, lab, np.zeros(len(lab), bool))
               for i, (im, b, lab) in enumerate(zip(images, boxes, labels))]
    return to_detection_set(records, names, cfg.image_size)


def seeded_split(dset, fractions, seed, fold=0):
    """Split into len(fractions)+1 parts by a seeded permutation: the fractions first, the remainder last.
    `fold` k rotates the permutation by k times the first part, so that folds 0, 1, ... of one seed take
    disjoint first parts (k-fold cross-validation)."""
    order = np.random.default_rng(seed).permutation(len(dset))
    if fold:
        first = int(round(fractions[0] * len(dset)))
        if first * (fold + 1) > len(dset):
            raise DataError(f"data.test_fold {fold} is past the last whole fold: {len(dset)} images make "
                            f"{len(dset) // max(first, 1)} test parts of {first}")
        order = np.roll(order, -first * fold)
    parts, start = [], 0
    for frac in fractions:
        n = int(round(frac * len(dset)))
        parts.append(np.sort(order[start:start + n]))
        start += n
    parts.append(np.sort(order[start:]))
    return [dset.take(p) for p in parts]


def with_canvas_size(cfg):
    """`cfg` with image_size set: where unset, 128 for generated scenes (their own size) and 256 for photos
    (voc, coco, tfds: ImageNet backbones see objects of 30-250 pixels there, at 2 CPU cores' pace)."""
    if cfg.image_size is not None:
        return cfg
    return dataclasses.replace(cfg, image_size=128 if cfg.source == "scenes" else 256)


def load_detection_splits(cfg, seed, record=None, names=SPLITS):
    """{'train', 'val', 'test'} DetectionSets (only `names`); 'val' may be None (val_fraction 0).

    With `record`, the run's split record (data.split_record, made by `split_record`), a VOC or COCO
    source gives exactly the recorded images, whatever was added or removed since; data flags that
    would change them are refused. Scenes and tfds sets record only their identity: their splits are
    fixed already."""
    cfg = with_canvas_size(cfg)
    if cfg.image_size % 32:
        raise DataError(f"data.image_size must be a multiple of 32, got {cfg.image_size}")
    return recorded_or_fresh(record, cfg.source, split_recipe(cfg, seed), lambda: _recorded_splits(cfg, record, names),
                             lambda: _new_splits(cfg, seed, names))


def _new_splits(cfg, seed, names):
    if cfg.source == "scenes":  # each split generated on its own: evaluate makes only the test scenes
        return {name: _scene_split(cfg, seed, name) for name in names}
    sets = _fresh_splits(cfg, seed)
    return {name: sets[name] for name in names}


def split_recipe(cfg, seed):
    """The data flags that decide which images each split holds (for generated scenes and tfds sets,
    whose splits are fixed, only what names the set)."""
    if cfg.source == "scenes":
        return {"source": cfg.source, "scene_objects": cfg.scene_objects}
    if cfg.source == "tfds":
        return {"source": cfg.source, "tfds_name": cfg.tfds_name}
    fold = {"test_fold": cfg.test_fold} if cfg.test_fold else {}  # absent from records made before it existed
    return {"source": cfg.source, "seed": seed, "test_fraction": cfg.test_fraction, **fold,
            "val_fraction": cfg.val_fraction, "limit": cfg.limit, "classes": cfg.classes}


def _member_key(source, member):
    return member["annotation"] if source == "voc" else str(member["image_id"])


def _all_member_keys(cfg):
    """Every annotation file (voc) or image id (coco) of the data set now, nothing opened."""
    return list_voc_files(cfg.path) if cfg.source == "voc" else [str(i) for i in coco_image_ids(cfg.annotations)]


def split_record(cfg, seed, sets):
    """The split record of freshly made splits: the images of each split of a VOC or COCO source (their
    relative annotation and image paths, or COCO image id, file name and annotation ids); only the
    identity of generated scenes and tfds sets, whose splits are fixed already."""
    class_names = sets["train"].class_names
    if cfg.source not in ("voc", "coco"):
        return new_record(cfg.source, split_recipe(cfg, seed), class_names)
    members = {name: list(s.members) if s is not None else [] for name, s in sets.items()}
    used = {_member_key(cfg.source, m) for split in members.values() for m in split}
    unused = [k for k in _all_member_keys(cfg) if k not in used]
    return new_record(cfg.source, split_recipe(cfg, seed), class_names, members, unused)


def _recorded_splits(cfg, record, names):
    if not cfg.path:
        raise DataError(f"source {cfg.source} needs --data.path")
    if cfg.source == "coco" and not cfg.annotations:
        raise DataError("source coco needs --data.annotations (the instances JSON file)")
    class_names, members = record["class_names"], record["members"]
    known = {_member_key(cfg.source, m) for split in members.values() for m in split} | set(record["unused"])
    where = f"annotation file(s) under {cfg.path}" if cfg.source == "voc" else f"image(s) of {cfg.annotations}"
    report_new(sum(k not in known for k in _all_member_keys(cfg)), where)
    sets = {}
    for name in names:
        if cfg.source == "voc":
            records, _ = load_voc(cfg.path, class_names, cfg.skip_bad_files, members[name], name, cfg.image_size)
        else:
            records, _ = load_coco(cfg.annotations, cfg.path, class_names, cfg.skip_bad_files, members[name], name,
                                   cfg.image_size)
        empty_val = name == "val" and not records
        sets[name] = None if empty_val else to_detection_set(records, class_names, cfg.image_size)
    return sets


def _scene_split(cfg, seed, name):
    if name == "train":
        return _scenes(cfg, cfg.limit or cfg.train_scenes, seed, "train")
    if name == "val":
        return _scenes(cfg, cfg.val_scenes, seed + 1, "train") if cfg.val_scenes else None
    return _scenes(cfg, cfg.test_scenes, seed + 2, "test")


def _fresh_splits(cfg, seed):
    classes = [c.strip() for c in cfg.classes.split(",")] if cfg.classes else None
    if cfg.source == "tfds":
        if not cfg.tfds_name:
            raise DataError("source tfds needs --data.tfds_name (e.g. voc/2007)")
        if classes:
            raise DataError("--data.classes names the classes of voc and coco files; a tfds set has its own (leave the "
                            "flag out)")
        sets = {}
        for split, tfds_split in (("train", "train"), ("test", "validation")):
            records, names = load_tfds_detection(cfg.tfds_name, cfg.data_dir, tfds_split, cfg.image_size)
            sets[split] = to_detection_set(records, names, cfg.image_size)
        full = sets["train"]
    else:
        if not cfg.path:
            raise DataError(f"source {cfg.source} needs --data.path")
        if cfg.source == "voc":
            records, names = load_voc(cfg.path, classes, cfg.skip_bad_files, size=cfg.image_size)
        elif cfg.source == "coco":
            if not cfg.annotations:
                raise DataError("source coco needs --data.annotations (the instances JSON file)")
            records, names = load_coco(cfg.annotations, cfg.path, classes, cfg.skip_bad_files, size=cfg.image_size)
        else:
            raise DataError(f"unknown data source {cfg.source!r}; choose one of {', '.join(SOURCES)}")
        test, full = seeded_split(to_detection_set(records, names, cfg.image_size), [cfg.test_fraction], seed,
                                  cfg.test_fold)
        if not len(test):  # evaluate would have nothing to score, after the whole training
            raise DataError(f"the test split is empty: {cfg.test_fraction} of {len(records)} annotated images rounds "
                            "to none; raise --data.test_fraction or add images")
        sets = {"test": test}
    val, train = seeded_split(full, [cfg.val_fraction], seed + 1) if cfg.val_fraction else (None, full)
    if cfg.limit:
        train = train.take(np.arange(min(cfg.limit, len(train))))
    sets.update(train=train, val=val if val is not None and len(val) else None)
    return sets


def augment_batch(images, boxes, labels, seed, cfg):
    """Mosaic (cfg.mosaic > 0: the box axis grows up to 4x, real boxes first), flip, zoom/shift and colour-jitter a float batch, moving
    its canvas boxes along. Boxes mostly cut off by the crop are dropped (label -1). Every draw is a function of
    `seed`; the mosaic's seed is folded off it, so the other draws are the same with or without the mosaic."""
    shape = tf.shape(images)
    b, size = shape[0], tf.cast(shape[1], tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 4)
    if cfg.mosaic:
        mosaic_seed = tf.random.experimental.stateless_fold_in(seed, 4_099)
        images, boxes, labels = mosaic_batch(images, boxes, labels, mosaic_seed, cfg.min_visible, cfg.mosaic)
    valid = labels >= 0
    if cfg.flip:
        flip = tf.random.stateless_uniform([b], seeds[0]) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        flipped = tf.stack([boxes[..., 0], size - boxes[..., 3], boxes[..., 2], size - boxes[..., 1]], axis=-1)
        boxes = tf.where(flip[:, None, None], flipped, boxes)
    if cfg.zoom:
        # A window of side size/s (s > 1 zooms in) at a random place is resized onto the canvas.
        s = tf.random.stateless_uniform([b], seeds[1], 1 - cfg.zoom, 1 + cfg.zoom)
        window = size / s
        room = size - window
        offset = tf.minimum(room, 0.0)[:, None] + tf.random.stateless_uniform([b, 2], seeds[2]) * tf.abs(room)[:, None]
        # crop_and_resize samples pixel centres: map the window's first and last output centre.
        half = 0.5 * window / size
        start = offset + half[:, None] - 0.5
        end = offset + (size - 0.5) * (window / size)[:, None] - 0.5
        crop = tf.concat([start, end], axis=1) / (size - 1)
        images = tf.image.crop_and_resize(images, crop, tf.range(b), tf.cast(tf.stack([size, size]), tf.int32))
        moved = (boxes - tf.tile(offset, [1, 2])[:, None, :]) * s[:, None, None]
        clipped = tf.clip_by_value(moved, 0.0, size)
        kept = (box_area(clipped) >= cfg.min_visible * box_area(moved)) & wide_enough(clipped)
        valid = valid & kept
        boxes = clipped
    if cfg.color_jitter:
        images = color_jitter(images, seeds[3], cfg.color_jitter)
    boxes, labels = tf.where(valid[..., None], boxes, -1.0), tf.where(valid, labels, -1)
    if cfg.mosaic:
        boxes, labels = real_first(boxes, labels)
    return images, boxes, labels


def canvas_sides(cfg, step=32):
    """The canvas sides multi-scale training draws from (cfg.multi_scale around cfg.image_size, multiples of
    `step`), ascending; [image_size] when it is off."""
    low, high = (round(cfg.image_size * (1 + d * (cfg.multi_scale or 0.0)) / step, 6) for d in (-1, 1))
    return list(range(step * max(math.ceil(low), 1), step * math.floor(high) + 1, step)) or [cfg.image_size]


def rescale_batch(images, boxes, labels, seed, sides):
    """The whole batch resized to one side drawn from `sides` (by `seed`), its boxes scaled along; boxes that
    shrink under 2 pixels a side are dropped (label -1), as the zoom drops them."""
    pick = tf.random.stateless_uniform([], seed, 0, len(sides), dtype=tf.int32)
    side = tf.gather(tf.constant(sides, tf.int32), pick)
    factor = tf.cast(side, tf.float32) / tf.cast(tf.shape(images)[1], tf.float32)
    images = tf.image.resize(images, tf.stack([side, side]))
    scaled = boxes * factor
    valid = (labels >= 0) & wide_enough(scaled)
    return images, tf.where(valid[..., None], scaled, -1.0), tf.where(valid, labels, -1)


def train_epoch(dset, cfg, batch_size, seed, epoch, sides=None):
    """One epoch of (float canvases 0..255, {"boxes", "labels"}) batches; `epoch` may be a tensor. With
    cfg.multi_scale the canvases of each batch are of one side drawn from `sides` (default canvas_sides(cfg))."""
    n = len(dset)
    check_one_batch(n, batch_size)
    images = tf.constant(dset.canvas)
    boxes, labels = (tf.constant(a) for a in dset.padded())
    epoch = tf.cast(epoch, tf.int64)
    sides = sides or canvas_sides(cfg)
    order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))

    def make_batch(step, index):
        x = tf.cast(tf.gather(images, index), tf.float32)
        step_seed = tf.stack([epoch * 1_000_003 + step, tf.cast(seed, tf.int64)])
        x, b, lab = augment_batch(x, tf.gather(boxes, index), tf.gather(labels, index), step_seed, cfg)
        if len(sides) > 1:  # its own seed, so the other draws are the same with or without it
            x, b, lab = rescale_batch(x, b, lab, tf.random.experimental.stateless_fold_in(step_seed, 8_191), sides)
        return x, {"boxes": b, "labels": lab}

    ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True).enumerate()
    return ds.map(make_batch, num_parallel_calls=2, deterministic=True)


def eval_batches(dset, batch_size):
    """Deterministic (float canvases, {"boxes", "labels"}) batches of a held-out split."""
    boxes, labels = dset.padded()
    ds = tf.data.Dataset.from_tensor_slices((dset.canvas, {"boxes": boxes, "labels": labels}))
    return finish(ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y)))
