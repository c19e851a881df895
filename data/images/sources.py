"""Sources of labelled images, all decoded once into memory as uint8 arrays.

- embedded: the Fashion-MNIST and MNIST subsets shipped in data/embedded (see its README);
- idx: a folder with the full MNIST / Fashion-MNIST IDX files;
- folder: `root/<class>/<image>` files (the `image_dataset_from_directory` layout);
- tfds: a prepared TensorFlow Datasets set in a local `data_dir` (nothing is downloaded).
"""
import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from data.embedded import EMBEDDED_DIR
from data.errors import DataError
from data.images.idx import find_idx_pair, read_idx
from data.images.files import (IMAGE_EXTENSIONS, FolderScan, check_scan, inspect_image, load_image_file,
                               scan_class_folders, user_files)
from data.split_record import new_record, report_gone
from data.tfds_sets import open_tfds

EMBEDDED = {
    "fashion_mnist": ("fashion_mnist_6k.npz", ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]),
    "mnist": ("mnist_6k.npz", [str(i) for i in range(10)]),
}


@dataclasses.dataclass
class ImageSet:
    images: np.ndarray  # uint8 (n, h, w, c)
    labels: np.ndarray  # int32 (n,)
    class_names: list
    files: Optional[list] = None  # folder source: each image's path relative to the data folder (for the split record)

    def take(self, index):
        files = None if self.files is None else [self.files[i] for i in np.asarray(index, int).ravel()]
        return ImageSet(self.images[index], self.labels[index], self.class_names, files)


def _with_channel_axis(x):
    return x[..., None] if x.ndim == 3 else x


def load_embedded(name):
    """{'train': ImageSet, 'test': ImageSet} of an embedded set."""
    file_name, class_names = EMBEDDED[name]
    with np.load(EMBEDDED_DIR / file_name) as z:
        return {
            split: ImageSet(_with_channel_axis(z[f"x_{split}"]), z[f"y_{split}"].astype(np.int32), class_names)
            for split in ("train", "test")
        }


def load_idx_folder(folder, class_names=None):
    """{'train', 'test'} from train-/t10k- images and labels IDX files in `folder`."""
    if not Path(folder).is_dir():
        raise DataError(f"IDX folder not found: {folder} (expected train-images-idx3-ubyte.gz and friends)")
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img_path, lbl_path = find_idx_pair(folder, prefix)
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if len(images) != len(labels):
            raise DataError(f"{img_path} holds {len(images)} images but {lbl_path} holds {len(labels)} labels")
        n_classes = int(labels.max()) + 1
        names = class_names or (EMBEDDED["fashion_mnist"][1] if "fashion" in str(folder).lower() else None)
        out[split] = ImageSet(_with_channel_axis(images), labels.astype(np.int32), names or [str(i) for i in range(n_classes)])
    return out


def load_class_folder(root, size, channels, skip_bad, square="stretch"):
    """One ImageSet of every readable image under `root/<class>/`, resized to `size` (square: files.to_square)."""
    scan = scan_class_folders(root)
    check_scan(scan, skip_bad)
    return _image_set(Path(root), scan, size, channels, square)


def _image_set(root, scan, size, channels, square="stretch"):
    images = np.stack([load_image_file(p, size, channels, square) for p, _ in scan.files]) if scan.files \
        else np.zeros((0, *size, channels), np.uint8)
    labels = np.array([label for _, label in scan.files], np.int32)
    return ImageSet(images, labels, scan.class_names, [p.relative_to(root).as_posix() for p, _ in scan.files])


def list_class_images(root):
    """Relative paths of the image files of `root/<class>/` as a scan sees them (nothing opened)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                  for p in user_files(d) if p.suffix.lower() in IMAGE_EXTENSIONS)


def class_folder_record(source, recipe, sets, root):
    """The split record of class-folder splits ({split: ImageSet with files}): each member's relative path
    and class name, and the files of `root` that are in no split (data.split_record)."""
    class_names = sets["train"].class_names
    members = {name: [{"path": f, "label": class_names[label]} for f, label in zip(s.files, s.labels)]
               for name, s in sets.items()}
    used = {m["path"] for split in members.values() for m in split}
    return new_record(source, recipe, class_names, members, [f for f in list_class_images(root) if f not in used])


def load_class_members(root, members, class_names, size, channels, skip_bad, split, square="stretch"):
    """An ImageSet of exactly the recorded `members` ({"path": relative path, "label": class name}) of
    `root`: members gone since are reported (data.split_record.report_gone), the others checked as a scan does."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    here = [(root / m["path"]).is_file() for m in members]
    report_gone(split, [str(root / m["path"]) for m, h in zip(members, here) if not h], len(members), root)
    present = [m for m, h in zip(members, here) if h]
    files, bad, modes = [], [], {}
    for m in present:
        path = root / m["path"]
        mode, reason = inspect_image(path)
        if reason:
            bad.append((path, reason))
        else:
            files.append((path, class_names.index(m["label"])))
            modes[path] = mode
    usual = max(set(modes.values()), key=list(modes.values()).count) if modes else "RGB"
    scan = FolderScan(list(class_names), files, bad, [(p, m) for p, m in modes.items() if m != usual])
    if members:
        check_scan(scan, skip_bad)
    return _image_set(root, scan, size, channels, square)


def load_tfds(name, data_dir, split):
    """One split of a prepared tfds image-classification set, read offline from `data_dir`."""
    builder = open_tfds(name, data_dir, split)
    label_feature = builder.info.features["label"]
    images, labels = [], []
    for example in builder.as_dataset(split=split, as_supervised=True).as_numpy_iterator():
        images.append(example[0])
        labels.append(example[1])
    return ImageSet(np.stack(images), np.array(labels, np.int32), list(label_feature.names))


def seeded_split(image_set, fractions, seed):
    """Split into len(fractions)+1 parts: the fractions first, the remainder last; per-class stratified."""
    rng = np.random.default_rng(seed)
    parts = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(image_set.labels):
        idx = rng.permutation(np.flatnonzero(image_set.labels == label))
        start = 0
        for i, frac in enumerate(fractions):
            n = int(round(frac * len(idx)))
            parts[i].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [image_set.take(np.sort(np.concatenate(p))) for p in parts]
