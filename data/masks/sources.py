"""Sources of images with per-pixel class masks: mask PNGs, image/mask folders, Pascal VOC, prepared tfds sets.

A mask is a uint8 HxW array of class ids 0..C-1 with 255 = ignore (VOC's object borders, padding).
Masks are read with Pillow because a palette PNG's indices ARE the class ids (as VOC writes them)
and tf.io.decode_png would give their colours. Images are decoded by TensorFlow's decoders, as
serving decodes them. Every user mistake is a DataError naming the file:

    ids = read_mask("masks/0.png", num_classes=2)          # 0/255 binary masks come back as 0/1
    mset = load_mask_folder("membrane")                     # membrane/images/*.png + membrane/masks/*.png
"""
import dataclasses
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from data.errors import DataError
from data.images.exif import exif_orientation
from data.images.files import IMAGE_EXTENSIONS, OTHER_IMAGE_EXTENSIONS, fit_within, read_image_file, resize_uint8
from data.split_record import report_gone
from data.tfds_sets import open_tfds
from data.user_files import user_files

IGNORE = 255
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
BINARY_CLASSES = ["background", "foreground"]
# tfds sets with a known mask feature: (feature, {stored value: class id}, class names); other values are an error.
TFDS_MASKS = {"oxford_iiit_pet": ("segmentation_mask", {1: 1, 2: 0, 3: IGNORE}, ["background", "pet"])}


@dataclasses.dataclass
class MaskSet:
    """Images (uint8 HxWx3, sizes may differ) and their masks (uint8 HxW ids, 255 = ignore)."""

    images: list
    masks: list
    files: Optional[list]  # folder/VOC: image paths relative to the data folder (split record keys); else None
    class_names: list
    binary: bool = False  # folder masks read as 0/255 -> 0/1 (recorded, so a split loaded alone is read alike)
    cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)  # the pipeline's tensors

    def __len__(self):
        return len(self.images)

    def take(self, index):
        index = [int(i) for i in np.asarray(index, int).ravel()]
        return MaskSet([self.images[i] for i in index], [self.masks[i] for i in index],
                       None if self.files is None else [self.files[i] for i in index], self.class_names, self.binary)


def shrink_image(image, max_side):
    """uint8 [h, w, 3] with its long side at most `max_side` (None: as it is), resized as the exports resize."""
    if not max_side or max(image.shape[:2]) <= max_side:
        return image
    return resize_uint8(image, fit_within(image.shape[:2], max_side)).numpy()


def shrink_mask(mask, max_side):
    """uint8 [h, w] class ids with the long side at most `max_side`: nearest neighbour, so ids stay ids."""
    if not max_side or max(mask.shape) <= max_side:
        return mask
    size = fit_within(mask.shape, max_side)
    return tf.image.resize(mask[..., None], size, method="nearest").numpy()[..., 0]


# ---- one mask file ----

def _decode_mask(path):
    """(raw uint8 HxW values, whether they are palette indices) of a mask file; unreadable = DataError."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # Pillow's warning names no file; its error comes at twice its limit
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                fmt, mode = im.format, im.mode
                raw = np.asarray(im)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read mask: too many pixels to decode safely ({e}); downscale the image and "
                        "its mask (nearest-neighbour for the mask), or tile them") from None
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found") from None
    except (UnidentifiedImageError, SyntaxError) as e:
        raise DataError(f"{path}: cannot read mask: not an image ({type(e).__name__})") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read mask: corrupt image ({e})") from None
    if fmt == "JPEG":
        raise DataError(f"{path}: a JPEG mask: JPEG compression changes class ids along edges; save masks as PNG")
    if mode == "P":
        return raw.astype(np.uint8), True
    if mode == "1":
        return raw.astype(np.uint8) * 255, False  # a 1-bit mask is a binary mask: 0/255 like an 8-bit one
    if mode in ("L", "LA"):
        return (raw[..., 0] if raw.ndim == 3 else raw).astype(np.uint8), False
    if mode.startswith("I"):  # 16/32-bit greyscale
        if raw.size and (raw.max() > 255 or raw.min() < 0):
            raise DataError(f"{path}: a 16-bit mask with values up to {raw.max()}; class ids must be 0..254 (255 = ignore)")
        return raw.astype(np.uint8), False
    if mode in ("RGB", "RGBA"):
        rgb = raw[..., :3]
        if (rgb == rgb[..., :1]).all():  # grey saved as RGB
            return rgb[..., 0].copy(), False
        raise DataError(f"{path}: an RGB colour mask; a mask holds class ids: save it as a palette PNG (mode P, the "
                        "palette index is the id, as Pascal VOC does) or a greyscale PNG of ids")
    raise DataError(f"{path}: image mode {mode} is not a mask (expected a greyscale or palette PNG of class ids)")


def _is_binary(raw, palette):
    """A greyscale mask of 0 and 255 only (255 present): background/foreground, not 255 = ignore."""
    return not palette and bool((raw == 255).any()) and bool(((raw == 0) | (raw == 255)).all())


def _between_values(raw, ignore):
    """Values most of whose pixels lie strictly between their two neighbours along a row or column: the
    ramps a bilinear resize leaves across the edges between class regions (255 skipped when it is `ignore`)."""
    a = raw.astype(np.int16)
    between = np.zeros(a.shape, bool)
    for axis in (0, 1):
        if a.shape[axis] < 3:
            continue
        lo, mid, hi = (np.take(a, np.arange(s, a.shape[axis] - 2 + s), axis=axis) for s in (0, 1, 2))
        ok = ((lo != ignore) & (mid != ignore) & (hi != ignore)) if ignore is not None else True
        ramp = ok & (((lo < mid) & (mid < hi)) | ((lo > mid) & (mid > hi)))
        inner = [slice(None), slice(None)]
        inner[axis] = slice(1, a.shape[axis] - 1)
        between[tuple(inner)] |= ramp
    counts = np.bincount(a.ravel(), minlength=256)
    flagged = np.bincount(a[between], minlength=256)
    return [v for v in range(256) if flagged[v] >= 2 and 2 * flagged[v] >= counts[v]]


def _check_not_interpolated(raw, palette, path):
    """Refuse masks that were resized with bilinear (or otherwise smoothed): class ids are not intensities."""
    near_binary = not palette and (raw == 0).any() and (raw == 255).any() and ((raw == 0) | (raw == 255)).mean() >= 0.8
    values = _between_values(raw, None if near_binary else IGNORE)
    if len(values) >= 2 or (near_binary and values):
        shown = ", ".join(map(str, values[:6])) + (", ..." if len(values) > 6 else "")
        raise DataError(f"{path}: looks interpolated: values {shown} lie between the class ids along edges (a mask "
                        "resized with bilinear, or smoothed); resize masks with nearest-neighbour and save them as PNG")


def _binary_set(raws, num_classes, root, named=False):
    """Whether the masks [(path, raw, palette)] are a binary 0/255 set (read as 0/1). A set that mixes such masks
    with masks of other values is refused unless classes.txt names the classes (`named`: then every mask holds
    ids, 255 = ignore, as 0/1/255 masks with an image of no foreground do): one stray value (an anti-aliased
    brush's 128, a 1) would otherwise make 255 mean "ignore" in every mask, all foreground lost."""
    looks_binary = [path for path, raw, palette in raws if _is_binary(raw, palette)]
    if not looks_binary or (num_classes or 2) != 2:
        return False
    other = [(path, raw) for path, raw, palette in raws
             if not _is_binary(raw, palette) and (palette or raw.any())]  # an all-0 mask fits either reading
    if other and named:
        return False
    if other:
        path, raw = other[0]
        values = np.unique(raw)
        raise DataError(f"{len(looks_binary)} mask(s) are binary 0/255 (e.g. {Path(looks_binary[0]).relative_to(root)}) but "
                        f"{len(other)} hold other values (e.g. {Path(path).relative_to(root)}: "
                        f"{', '.join(map(str, values[:6]))}{', ...' if len(values) > 6 else ''}): make every mask 0/255, "
                        "or class ids 0..N-1 (255 = ignore) named in classes.txt")
    return True


def _refuse_nothing_to_learn(raws, ids, masks_dir):
    """A whole set whose masks hold no class but 0 (255 aside) has nothing to segment; most often its objects are
    255 in palette masks, which mean "ignore" as in VOC."""
    if any((m[m != IGNORE] > 0).any() for m in ids):
        return
    hidden = next((path for (path, raw, palette), m in zip(raws, ids) if palette and (m == IGNORE).any()), None)
    hint = (f"; their objects are 255 in palette masks (e.g. {hidden.name}), which means ignore (VOC's object borders): "
            "save binary masks as greyscale 0/255 PNGs (mode L), read as background/foreground") if hidden else ""
    raise DataError(f"every mask under {masks_dir} holds only class 0 (background) and 255 (ignore): nothing to "
                    f"segment{hint}")


def _to_ids(raw, palette, path, binary, num_classes):
    _check_not_interpolated(raw, palette, path)
    ids = (raw == 255).astype(np.uint8) if binary else raw
    if num_classes is not None:
        bad = np.unique(ids[(ids >= num_classes) & (ids != IGNORE)])
        if len(bad):
            raise DataError(f"{path}: class id(s) {', '.join(map(str, bad[:6]))} beyond the {num_classes} classes "
                            f"(ids 0..{num_classes - 1}, 255 = ignore)")
    return ids


def read_mask(path, num_classes=None, binary=None):
    """uint8 HxW class ids of a mask PNG: greyscale ids (mode L), palette indices (mode P, as VOC writes
    them; 255 = ignore), or a binary 0/255 mask (`binary` None: detected per file) mapped to 0/1.

    >>> read_mask("SegmentationClass/2007_000032.png", num_classes=21)  # ids 0..20 and 255
    """
    raw, palette = _decode_mask(path)
    return _to_ids(raw, palette, path, _is_binary(raw, palette) if binary is None else binary, num_classes)


def _read_image(path):
    try:
        image = read_image_file(path).numpy()
    except DataError:
        raise
    except Exception as e:  # TF raises several types for a broken file
        raise DataError(f"{path}: cannot read image: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return image


def _check_same_size(image, mask_shape, image_path, mask_path):
    if image.shape[:2] != tuple(mask_shape):
        turned = ("; the image's EXIF orientation turns it upright (as photo viewers and this suite show it), and the "
                  "mask fits the image as stored: rotate the mask, or remove the image's orientation tag "
                  "(exiftool -Orientation= FILE)") if image.shape[:2] == tuple(mask_shape)[::-1] and \
            int(exif_orientation(tf.constant(Path(image_path).read_bytes()))) >= 5 else ""
        raise DataError(f"mask {mask_path} is {mask_shape[0]}x{mask_shape[1]} (HxW) but its image {image_path} is "
                        f"{image.shape[0]}x{image.shape[1]}; a mask must have its image's size{turned}")


def _class_names_file(root):
    path = Path(root) / "classes.txt"
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DataError(f"{path} names no classes (one class name per line, id 0 first)")
    if "" in lines:  # the line gives the id: a blank one between names would shift every name after it
        raise DataError(f"{path} line {lines.index('') + 1} is blank; one class name per line, id 0 first (name an "
                        "unused id, e.g. 'unused')")
    names = lines
    if len(set(names)) != len(names):
        raise DataError(f"{path} names a class twice")
    return names


# ---- images/ + masks/ folders ----

def _by_stem(folder, extensions):
    """{relative path without suffix: file} under `folder`; two files with one stem are an error, and so are
    pictures in a format outside `extensions` (a TIFF photo is not left out unsaid). Hidden files and folders
    (._a.png, .ipynb_checkpoints/) and Thumbs.db are not data (data.user_files)."""
    files = user_files(folder)
    unreadable = [p for p in files if p.suffix.lower() in OTHER_IMAGE_EXTENSIONS and p.suffix.lower() not in extensions]
    if unreadable:
        raise DataError(f"{len(unreadable)} picture(s) under {folder} in a format the exported model's decoder cannot "
                        f"read, e.g. {unreadable[0]}: convert them to PNG (e.g. `mogrify -format png *{unreadable[0].suffix}`)")
    found = {}
    for p in files:
        if p.suffix.lower() in extensions:
            key = p.relative_to(folder).with_suffix("").as_posix()
            if key in found:
                raise DataError(f"{found[key]} and {p} have the same name; keep one of them")
            found[key] = p
    return found


MASK_EXTENSIONS = IMAGE_EXTENSIONS + (".tif", ".tiff")  # masks are read by Pillow, never served: TIFF masks too
IMAGE_DIRS = ("images", "image")
MASK_DIRS = ("masks", "mask", "labels", "label")


def _one_dir(root, names, what):
    found = [root / n for n in names if (root / n).is_dir()]
    if len(found) > 1:
        raise DataError(f"mask folder {root} has both {found[0].name}/ and {found[1].name}/; keep one {what} folder")
    if not found:
        raise DataError(f"mask folder {root} has no {names[0]}/ folder (expected {root}/images/<name>.jpg and "
                        f"{root}/masks/<name>.png; image/ and label(s)/ are accepted too)")
    return found[0]


def _pairs(root):
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"mask folder not found: {root}")
    images_dir, masks_dir = _one_dir(root, IMAGE_DIRS, "image"), _one_dir(root, MASK_DIRS, "mask")
    return root, images_dir, _by_stem(images_dir, IMAGE_EXTENSIONS), masks_dir, _by_stem(masks_dir, MASK_EXTENSIONS)


def list_mask_folder(root):
    """Relative paths of the images under root/images (the split record's keys; nothing decoded)."""
    root, _, images, _, _ = _pairs(root)
    return [p.relative_to(root).as_posix() for p in images.values()]


def _examples(names, more=3):
    return ", ".join(names[:more]) + (", ..." if len(names) > more else "")


def load_mask_folder(root, class_names=None, members=None, split="test", max_side=None, binary=None):
    """`root/images/` and `root/masks/` (or image/ and label(s)/) matched by name (sub-folders too); class names from `class_names`,
    else `root/classes.txt` (one per line, id 0 first), else background/foreground for binary 0/255
    masks, else class_0..class_<max id>.

    With `members` (a split record's image paths relative to `root`), exactly those, in that order;
    members whose image or mask is gone are reported (data.split_record.report_gone). With `max_side`, each image
    and mask is shrunk as it is read (shrink_image, shrink_mask), so only the shrunk ones are held. `binary`: the
    whole set's reading (MaskSet.binary) for a split loaded alone, whose masks may all look 0/255 in a set of ids."""
    root, images_dir, images, masks_dir, masks = _pairs(root)
    if members is not None:
        keys = [(root / m).relative_to(images_dir).with_suffix("").as_posix() for m in members]
        gone = [m for m, k in zip(members, keys) if k not in images or k not in masks]
        report_gone(split, gone, len(members), root)
        keys = [k for k in keys if k in images and k in masks]
    else:
        no_mask = [images[k].relative_to(root).as_posix() for k in images if k not in masks]
        no_image = [masks[k].relative_to(root).as_posix() for k in masks if k not in images]
        if no_mask or no_image:
            parts = ([f"{len(no_mask)} image(s) have no mask in {masks_dir} ({_examples(no_mask)})"] if no_mask else []) + \
                    ([f"{len(no_image)} mask(s) have no image in {images_dir} ({_examples(no_image)})"] if no_image else [])
            raise DataError("; ".join(parts) + ": images and masks are matched by name")
        keys = list(images)
        if not keys:
            raise DataError(f"no images under {images_dir}")
    raws, mask_shapes = [], []
    for k in keys:
        raw, palette = _decode_mask(masks[k])
        mask_shapes.append(raw.shape)
        raws.append((masks[k], shrink_mask(raw, max_side), palette))  # nearest: the ids a mask holds stay the same
    named = _class_names_file(root)
    class_names = list(class_names or named or [])
    num_classes = len(class_names) or None
    binary = _binary_set(raws, num_classes, root, named is not None) if binary is None else binary
    ids = [_to_ids(raw, palette, path, binary, num_classes) for path, raw, palette in raws]
    if members is None:
        _refuse_nothing_to_learn(raws, ids, masks_dir)
    if not class_names:
        used = sorted(set().union(*(np.unique(m[m != IGNORE]).tolist() for m in ids)) | {0})
        class_names = list(BINARY_CLASSES) if binary else [f"class_{i}" for i in range(max(used[-1], 1) + 1)]
        if len(used) < len(class_names) / 2:
            warnings.warn(f"the masks use {len(used)} class ids up to {used[-1]} ({_examples([str(i) for i in used], 6)}): "
                          f"the model gets {len(class_names)} classes, {len(class_names) - len(used)} of them never "
                          "seen; a mask holds class indices 0..N-1 (255 = ignore): map your values to them",
                          stacklevel=2)
    pictures = []
    for k, shape in zip(keys, mask_shapes):
        image = _read_image(images[k])
        _check_same_size(image, shape, images[k], masks[k])
        pictures.append(shrink_image(image, max_side))
    return MaskSet(pictures, ids, [images[k].relative_to(root).as_posix() for k in keys], class_names, binary)


# ---- Pascal VOC segmentation ----

def _voc_root(root):
    """The VOC year folder: `root` itself, or its one VOC20xx sub-folder (VOCdevkit/)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"VOC folder not found: {root}")
    if not (root / "ImageSets").is_dir():
        years = sorted(p for p in root.glob("VOC*") if (p / "ImageSets").is_dir())
        if len(years) == 1:
            return years[0]
        raise DataError(f"{root} is not a Pascal VOC folder (no ImageSets/Segmentation; expected e.g. VOCdevkit/VOC2012)")
    return root


def voc_image_ids(root, image_set):
    """The ids listed in ImageSets/Segmentation/<image_set>.txt."""
    root = _voc_root(root)
    listing = root / "ImageSets" / "Segmentation" / f"{image_set}.txt"
    if not listing.is_file():
        have = sorted(p.stem for p in listing.parent.glob("*.txt"))
        raise DataError(f"VOC image set {listing} not found" + (f" (have: {', '.join(have)})" if have else ""))
    ids = [line.split()[0] for line in listing.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not ids:
        raise DataError(f"VOC image set {listing} lists no images")
    return ids


def load_voc_segmentation(root, image_set, members=None, split="test", max_side=None):
    """The images of ImageSets/Segmentation/<image_set>.txt: JPEGImages/<id>.jpg and the palette PNG
    SegmentationClass/<id>.png (ids 0..20, 255 = object borders, ignored); the 21 VOC class names.

    With `members` (a split record's "JPEGImages/<id>.jpg" paths), exactly those, in that order; `max_side`: as
    load_mask_folder's."""
    root = _voc_root(root)
    if members is not None:
        ids = [Path(m).stem for m in members]
        gone = [m for m, i in zip(members, ids) if not (root / m).is_file() or not (root / "SegmentationClass" / f"{i}.png").is_file()]
        report_gone(split, gone, len(members), root)
        ids = [i for m, i in zip(members, ids) if m not in gone]
    else:
        ids = voc_image_ids(root, image_set)
    images, masks = [], []
    for i in ids:
        image_path, mask_path = root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png"
        for p in (image_path, mask_path):
            if not p.is_file():
                raise DataError(f"{p} not found (listed in ImageSets/Segmentation/{image_set}.txt)")
        mask = read_mask(mask_path, len(VOC_CLASSES), binary=False)
        image = _read_image(image_path)
        _check_same_size(image, mask.shape, image_path, mask_path)
        images.append(shrink_image(image, max_side))
        masks.append(shrink_mask(mask, max_side))
    return MaskSet(images, masks, [f"JPEGImages/{i}.jpg" for i in ids], list(VOC_CLASSES))


# ---- tfds ----

def load_tfds_segmentation(name, data_dir, split, max_side=None):
    """One split of a prepared tfds segmentation set (nothing downloaded). oxford_iiit_pet's trimaps
    (1 pet, 2 background, 3 border) become 0 background, 1 pet, 255 border (ignored); another set
    needs a `segmentation_mask` feature of class ids. `max_side`: as load_mask_folder's."""
    builder = open_tfds(name, data_dir, split)
    features = builder.info.features
    key, mapping, class_names = TFDS_MASKS.get(name.split(":")[0].split("/")[0], ("segmentation_mask", None, None))
    if key not in features or "image" not in features:
        raise DataError(f"tfds data set {name!r} has no 'image' and {key!r} features (has {', '.join(features)})")
    lut = None
    if mapping is not None:
        lut = np.full(256, -1, np.int16)
        for value, cls in mapping.items():
            lut[value] = cls
    images, masks = [], []
    for i, ex in enumerate(builder.as_dataset(split=split).as_numpy_iterator()):
        where = f"tfds {name}[{split}] example {i}"
        raw = ex[key][..., 0] if ex[key].ndim == 3 else ex[key]
        mask = raw.astype(np.uint8)
        if lut is not None:
            mapped = lut[mask]
            if (mapped < 0).any():
                raise DataError(f"{where}: mask value(s) {sorted(set(mask[mapped < 0].tolist()))[:6]} are not "
                                f"in {sorted(mapping)}")
            mask = mapped.astype(np.uint8)
        image = ex["image"]
        image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
        if image.shape[:2] != mask.shape:
            raise DataError(f"{where}: mask is {mask.shape[0]}x{mask.shape[1]} but its image is {image.shape[0]}x{image.shape[1]}")
        images.append(shrink_image(image, max_side))
        masks.append(shrink_mask(mask, max_side))
    if not images:
        raise DataError(f"tfds data set {name!r} split {split!r} is empty")
    if class_names is None:
        top = max(int(m[m != IGNORE].max(initial=0)) for m in masks)
        class_names = [f"class_{c}" for c in range(max(top, 1) + 1)]
    return MaskSet(images, masks, None, list(class_names))
