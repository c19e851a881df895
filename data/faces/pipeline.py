"""Face-verification pipelines: identity-disjoint splits and P x K training batches.

Identities, never images, are split: a seeded permutation of the identities is cut into `folds` folds,
fold `test_fold` is the test split, `val_identities` more are held out, the rest train. People in the
test split are never seen in training.

A training batch holds P identities x K images each (online triplet mining needs positives and negatives
in every batch). The batches of epoch e are a pure function of (seed, e), so a resumed run sees what an
uninterrupted one would. An identity with fewer than K images gives all it has (a smaller batch); one with
a single image serves as a negative only.
"""
import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from data.errors import DataError
from data.faces.sources import frame_face, load_embedded_faces, load_identity_folders, load_tfds_faces
from data.fields import field
from data.images.files import CROP_MODES, SQUARE_MODES
from data.images.pipeline import augment_batch
from data.images.sources import class_folder_record, list_class_images, load_class_members
from data.split_record import check_recipe, new_record, report_new

SPLITS = ("train", "val", "test")
SOURCES = ["att_faces", "folder", "tfds"]
# AT&T's 92x112 portraits show hair, forehead and space around a face that dlib's 150x150 chips crop tightly:
# dlib untrained, bottom squares of 92/88/84/80 px, 84 px had the lowest EER on each fold's training people
# (fold 1: 5.7/4.0/3.6/4.2%; bench/README.md, faces).
ATT_SQUARE_CROP = 0.91


@dataclasses.dataclass
class FaceDataConfig:
    source: str = field("att_faces", "embedded AT&T faces, identity folders (LFW layout) or a prepared tfds set", SOURCES)
    path: Optional[str] = field(None, "folder of identity sub-folders <person>/<image> (source folder)")
    tfds_name: str = field("lfw", "tfds data set with image + person-name label (source tfds)")
    data_dir: Optional[str] = field(None, "tfds data_dir holding the prepared set (source tfds)")
    pairs: Optional[str] = field(None, "evaluate: an LFW pairs.txt (names under --data.path) instead of pairs drawn "
                                       "from the test identities")
    image_size: Optional[int] = field(None, "faces are resized to N x N (none: the backbone's own size)", min=16)
    square: Optional[str] = field(None, "how a face image that is not square becomes square before the resize: "
                                        "stretched, cropped to its largest square (center, top, bottom: 'bottom' drops "
                                        "the hair and space above a loosely framed face) or padded (pad); training, "
                                        "predict and the export alike (none: bottom for att_faces, whose 92x112 "
                                        "portraits show the hair above the face, cut to --data.square_crop; "
                                        "stretch otherwise)",
                                  list(SQUARE_MODES))
    square_crop: Optional[float] = field(None, "the square of a crop mode (center, top, bottom) as a share of the "
                                               "image's shorter side: below 1 crops tighter around the face (none: "
                                               f"{ATT_SQUARE_CROP} for att_faces with --data.square unset, 1 otherwise)",
                                         min=0.2, max=1.0)
    folds: int = field(4, "identities are cut into this many folds by a seeded permutation", min=2)
    test_fold: int = field(0, "the fold of identities held out as the test split", min=0)
    val_identities: int = field(0, "identities (from the non-test folds) held out for validation", min=0)
    identities_per_batch: int = field(8, "P: identities in a training batch", min=2)
    images_per_identity: int = field(4, "K: images of each identity in a training batch", min=2)
    skip_bad_files: bool = field(False, "skip unreadable image files (with a count) instead of stopping")
    flip: bool = field(True, "random horizontal flips")
    crop_padding: int = field(6, "random crops after padding by N pixels (0: off)", min=0)
    color_jitter: float = field(0.2, "random brightness/contrast strength, 0..1", min=0.0, max=1.0)

    def check(self, prefix=""):
        mode = framing(self)[0]
        if self.square_crop not in (None, 1.0) and mode not in CROP_MODES:
            raise ValueError(f"config key '{prefix}square_crop' ({self.square_crop}) applies to {prefix}square center, "
                             f"top or bottom, not {mode}")


def framing(cfg):
    """(mode, share): how a face becomes square, --data.square and --data.square_crop or the source's own
    framing when they are not set (see the fields)."""
    mode = cfg.square or ("bottom" if cfg.source == "att_faces" else "stretch")
    share = cfg.square_crop
    if share is None:
        share = ATT_SQUARE_CROP if cfg.square is None and cfg.source == "att_faces" else 1.0
    return mode, float(share)


def square_mode(cfg):
    """The framing as a mode for data.images.files.to_square."""
    mode, share = framing(cfg)
    return mode if share == 1.0 else (mode, share)


def split_recipe(cfg, seed):
    """The flags that decide which identities (and files) each split holds."""
    recipe = {"source": cfg.source, "seed": seed, "folds": cfg.folds, "test_fold": cfg.test_fold,
              "val_identities": cfg.val_identities}
    return {**recipe, "tfds_name": cfg.tfds_name} if cfg.source == "tfds" else recipe


def load_face_splits(cfg, seed, size, record=None, names=SPLITS):
    """{'train', 'val', 'test'} ImageSets (only `names`) of RGB size x size faces, identity-disjoint.

    With the run's split record (data.split_record) a folder source gives exactly the recorded files."""
    recipe = split_recipe(cfg, seed)
    if record is not None and record["source"] == cfg.source:
        check_recipe(record, recipe)
        if record["members"] is not None:
            return _recorded(cfg, record, size, names)
    full = _load_source(cfg, size)
    identities = identity_splits(len(full.class_names), cfg, seed)
    sets = {name: full.take(np.flatnonzero(np.isin(full.labels, identities[name]))) for name in names}
    for name in names:
        if name != "val" and len(sets[name].labels) == 0:
            raise DataError(f"the {name} split of source {cfg.source!r} is empty")
    if cfg.source in ("folder", "tfds"):  # framed as they were read, as a resumed run and the export read them: not twice
        return sets
    return {name: _sized(s, size, square_mode(cfg)) for name, s in sets.items()}


def identity_splits(n_identities, cfg, seed):
    """{'train', 'val', 'test'}: identity indices of each split (see the module docstring)."""
    if cfg.test_fold >= cfg.folds:
        raise DataError(f"--data.test_fold {cfg.test_fold} must be below --data.folds {cfg.folds}")
    if n_identities < cfg.folds:
        raise DataError(f"the data hold {n_identities} identities, fewer than --data.folds {cfg.folds}")
    order = np.random.default_rng(seed).permutation(n_identities)
    test = order[cfg.test_fold::cfg.folds]
    rest = np.array([i for i in order if i not in set(test.tolist())], np.int64)
    if cfg.val_identities > len(rest) - 2:
        raise DataError(f"--data.val_identities {cfg.val_identities} leaves fewer than 2 of the {len(rest)} "
                        "non-test identities for training")
    return {"test": np.sort(test), "val": np.sort(rest[:cfg.val_identities]), "train": np.sort(rest[cfg.val_identities:])}


def split_record(cfg, seed, sets):
    """The run's split record: each split's files for a folder source, the recipe alone for fixed sets."""
    if cfg.source != "folder":
        return new_record(cfg.source, split_recipe(cfg, seed), sets["train"].class_names)
    return class_folder_record(cfg.source, split_recipe(cfg, seed), sets, cfg.path)


def _load_source(cfg, size):
    if cfg.source == "att_faces":
        return load_embedded_faces()
    if cfg.source == "folder":
        if not cfg.path:
            raise DataError("the folder source needs --data.path (a folder of <person>/<image> files)")
        return load_identity_folders(cfg.path, size, cfg.skip_bad_files, square_mode(cfg))
    if cfg.source == "tfds":
        return load_tfds_faces(cfg.tfds_name, cfg.data_dir, size, square_mode(cfg))
    raise DataError(f"unknown data source {cfg.source!r}; choose one of {', '.join(SOURCES)}")


def _recorded(cfg, record, size, names):
    if not cfg.path:
        raise DataError("the run was trained on identity folders: pass --data.path")
    known = {m["path"] for split in record["members"].values() for m in split} | set(record["unused"])
    report_new(sum(f not in known for f in list_class_images(cfg.path)), f"image file(s) under {cfg.path}")
    return {name: load_class_members(cfg.path, record["members"][name], record["class_names"], (size, size), 3,
                                     cfg.skip_bad_files, name, square_mode(cfg)) for name in names}


def _sized(image_set, size, square):
    """RGB (grey repeated) size x size uint8 images, made square and resized as the exported model does it."""
    images = image_set.images
    if not len(images):
        return dataclasses.replace(image_set, images=np.zeros((0, size, size, 3), np.uint8))
    if images.shape[1:3] != (size, size) or not isinstance(square, str):  # a tighter square crops even those
        images = np.stack([frame_face(image, size, square) for image in images])
    elif images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return dataclasses.replace(image_set, images=images)


def identity_table(labels):
    """(members, counts): the image indices of each identity present, as a -1-padded (people, most) table."""
    people = np.unique(labels)
    if len(people) < 2:
        raise DataError(f"training needs at least 2 identities; the training split has {len(people)}")
    rows = [np.flatnonzero(labels == person) for person in people]
    members = np.full((len(rows), max(map(len, rows))), -1, np.int64)
    for i, row in enumerate(rows):
        members[i, :len(row)] = row
    return members, np.array([len(r) for r in rows], np.int64)


def pk_indices(members, counts, p, k, seed):
    """Image indices of one P x K batch, a stateless function of `seed` (shape [2] int64): P distinct
    identities drawn uniformly, then K of each one's images without repeats (all of them when fewer)."""
    members, counts = tf.constant(members), tf.constant(counts)
    people_seed, image_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    people = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(members, out_type=tf.int64)[0]), people_seed)[:p]
    rows, n = tf.gather(members, people), tf.gather(counts, people)
    position = tf.range(tf.shape(members, out_type=tf.int64)[1])[None, :]
    keys = tf.random.stateless_uniform(tf.shape(rows), image_seed)
    keys = tf.where(position < n[:, None], keys, 2.0)  # padding sorts last
    picked = tf.gather(rows, tf.argsort(keys, axis=1)[:, :k], batch_dims=1)
    return tf.boolean_mask(picked, position[:, :k] < n[:, None])


def describe_identities(image_set, k):
    """A line on the identities with fewer than K images (said once, when training starts), or None."""
    counts = np.bincount(image_set.labels, minlength=len(image_set.class_names))
    counts = counts[counts > 0]
    single, few = int((counts == 1).sum()), int(((counts > 1) & (counts < k)).sum())
    if not single and not few:
        return None
    counted = f"2..{k - 1} images" if k > 3 else "2 images"  # only K >= 3 has any
    parts = [f"{few} training identities have {counted} (fewer than K={k}: all of them are used, smaller batches)"] \
        if few else []
    if single:
        parts.append(f"{single} have a single image (negatives only)")
    return "; ".join(parts)


def batches_per_epoch(labels, p, k):
    """An epoch is as many P x K batches as the split has images for, at least one."""
    return max(1, len(labels) // (min(p, len(np.unique(labels))) * k))


def train_epoch(image_set, cfg, seed, epoch):
    """One epoch of (float images 0..255, int32 identity labels) P x K batches; `epoch` may be a tensor."""
    members, counts = identity_table(image_set.labels)
    p, k = min(cfg.identities_per_batch, len(counts)), cfg.images_per_identity
    images, labels = tf.constant(image_set.images), tf.constant(image_set.labels)
    epoch = tf.cast(epoch, tf.int64)

    def make_batch(step):
        batch_seed = tf.stack([epoch * 1_000_003 + step, tf.cast(seed, tf.int64)])
        index = pk_indices(members, counts, p, k, batch_seed)
        x = augment_batch(tf.cast(tf.gather(images, index), tf.float32), batch_seed + [0, 7_919], cfg)
        return x, tf.gather(labels, index)

    steps = batches_per_epoch(image_set.labels, cfg.identities_per_batch, k)
    return tf.data.Dataset.range(steps).map(make_batch, num_parallel_calls=2, deterministic=True)


def eval_batches(image_set, batch_size):
    """Deterministic (float images, labels) batches of a held-out split."""
    ds = tf.data.Dataset.from_tensor_slices((image_set.images, image_set.labels)).batch(batch_size)
    return ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
