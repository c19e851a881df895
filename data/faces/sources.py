"""Face sets by identity: the embedded AT&T faces, identity folders (the LFW layout), a prepared tfds
`lfw`, and LFW's pairs.txt. Faces come already detected and cropped: detection and alignment are out of
scope (a face detector belongs before this app).

Every loader returns an ImageSet (data.images.sources) whose `class_names` are the identities; the folder and
tfds readers frame and size each face as they read it (LFW's 13,233 faces of 250x250 would hold 2.5 GB as
stored), the small embedded set is sized by data.faces.pipeline.
"""
from pathlib import Path

import numpy as np

from data.embedded import embedded_file
from data.errors import DataError
from data.images.files import IMAGE_EXTENSIONS, resize_uint8, to_square
from data.images.sources import ImageSet, load_class_folder
from data.tfds_sets import open_tfds

ATT_FACES = "att_faces.npz"


def load_embedded_faces():
    """The AT&T (ORL) faces: 40 identities x 10 grey 112x92 images (credit AT&T Laboratories Cambridge)."""
    with np.load(embedded_file(ATT_FACES)) as z:
        return ImageSet(z["images"][..., None], z["labels"].astype(np.int32), [str(n) for n in z["identities"]],
                        [str(f) for f in z["files"]])


def load_identity_folders(root, size, skip_bad, square="stretch"):
    """Every readable image under `root/<identity>/` (JPEG/PNG/BMP/GIF/WebP/PGM), RGB, made square
    (data.images.files.to_square) and resized to size x size."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"identity-folder data not found: {root} (expected {root}/<person>/<image>, as LFW is laid out)")
    return load_class_folder(root, (size, size), 3, skip_bad, square)


def frame_face(image, size, square="stretch"):
    """One face as an RGB (grey repeated) size x size uint8 array, made square and resized as the export does."""
    image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    return resize_uint8(to_square(image, square), (size, size)).numpy()


def load_tfds_faces(name, data_dir, size, square="stretch"):
    """A prepared tfds face set whose examples have `image` and a person-name `label` (tfds `lfw`), all splits;
    each face RGB, made square (data.images.files.to_square) and resized to size x size as it is read."""
    builder = open_tfds(name, data_dir, "train")
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"tfds data set {name!r} has no 'image' and 'label' features (has {', '.join(features)})")
    images, people = [], []
    for split in builder.info.splits:
        for example in builder.as_dataset(split=split).as_numpy_iterator():
            images.append(frame_face(example["image"], size, square))
            label = example["label"]
            people.append(label.decode() if isinstance(label, bytes) else str(label))
    identities = sorted(set(people))
    index = {p: i for i, p in enumerate(identities)}
    return ImageSet(np.stack(images), np.array([index[p] for p in people], np.int32), identities)


def read_lfw_pairs(path, root):
    """LFW's pairs.txt -> (file_a, file_b, same, fold) lists, files relative to `root`.

    The first line gives the folds and the pairs per class per fold ("10 300"; one number, as in View 1's
    pairsDevTest.txt, is one fold); then per fold that many
    matched lines "name n1 n2" and mismatched lines "name1 n1 name2 n2"; image n of a person is
    <name>/<name>_<n:04d>.jpg. Every referenced file must exist under `root`."""
    path, root = Path(path), Path(root) if root else None
    if not path.is_file():
        raise DataError(f"pairs file not found: {path}")
    if root is None or not root.is_dir():
        raise DataError(f"the pairs file {path} needs --data.path: the identity folders its names refer to")
    lines = [line.split() for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines() if line.strip()]
    try:  # View 2's "10 300"; View 1's pairsDevTrain.txt / pairsDevTest.txt give one number: one fold
        folds, per_fold = (int(v) for v in lines[0][:2]) if len(lines[0]) > 1 else (1, int(lines[0][0]))
    except (IndexError, ValueError):
        raise DataError(f"{path}:1: expected '<folds> <pairs per fold>' (e.g. '10 300') or, as LFW's View 1 files, "
                        f"'<pairs>' (e.g. '500'), got {' '.join(lines[0]) if lines else 'nothing'}") from None
    if len(lines) < 1 + folds * 2 * per_fold:
        raise DataError(f"{path}: the header promises {folds} folds x 2 x {per_fold} pairs, the file has {len(lines) - 1} lines")
    file_a, file_b, same, fold = [], [], [], []
    for number, fields in enumerate(lines[1:1 + folds * 2 * per_fold], start=2):
        try:
            if len(fields) == 3:
                (a, na), (b, nb) = (fields[0], int(fields[1])), (fields[0], int(fields[2]))
            elif len(fields) == 4:
                (a, na), (b, nb) = (fields[0], int(fields[1])), (fields[2], int(fields[3]))
            else:
                raise ValueError
        except ValueError:
            raise DataError(f"{path}:{number}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {' '.join(fields)!r}") from None
        file_a.append(_lfw_file(root, a, na))
        file_b.append(_lfw_file(root, b, nb))
        same.append(len(fields) == 3)
        fold.append((number - 2) // (2 * per_fold))
    missing = sorted({f for f in file_a + file_b if not (root / f).is_file()})
    if missing:
        raise DataError(f"{len(missing)} image(s) named by {path} are missing under {root}, e.g. {root / missing[0]} "
                        f"(or the same name with {', '.join(IMAGE_EXTENSIONS[1:])})")
    return file_a, file_b, np.array(same), np.array(fold)


def _lfw_file(root, name, number):
    """`name/name_000N.jpg` as LFW names its images, or the first of the other image extensions present."""
    stem = f"{name}/{name}_{number:04d}"
    return next((stem + e for e in IMAGE_EXTENSIONS if (root / (stem + e)).is_file()), stem + ".jpg")
