"""Sources of images with boxes: Pascal VOC XML folders, COCO JSON, prepared tfds sets, generated scenes.

Every reader returns `Annotated` records with boxes already in the suite's format (data.boxes).
A bad file (unreadable image, malformed annotation, unknown class, box outside its image) is an
error naming the file, or, with skip_bad_files, a reported skip; never a silent wrong label.
"""
import dataclasses
import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Optional

import numpy as np
import tensorflow as tf

from data.boxes.geometry import check_boxes, from_coco, from_relative, from_voc, letterbox
from data.errors import DataError
from data.images.exif import exif_orientation
from data.images.files import read_image_file
from data.split_record import report_gone
from data.tfds_sets import open_tfds
from data.user_files import user_files


@dataclasses.dataclass
class Annotated:
    """One image and its objects; boxes are yxyx pixels of this image."""

    name: str
    image: np.ndarray  # uint8 (h, w, 3)
    boxes: np.ndarray  # float32 (k, 4)
    labels: np.ndarray  # int32 (k,)
    crowd: np.ndarray  # bool (k,): VOC "difficult" / COCO "iscrowd": neither rewarded nor punished in evaluation
    member: Optional[dict] = None  # VOC/COCO: what the split record keeps of it (relative paths, ids)
    iscrowd: Optional[np.ndarray] = None  # bool (k,): COCO "iscrowd" regions of many objects (in `crowd` too); None: none
    image_hw: Optional[tuple] = None  # set by on_canvas: `image` is then a letterboxed canvas of an image this size
    scale: Optional[np.ndarray] = None  # float32 (2,), set by on_canvas: image -> canvas pixels per axis


def on_canvas(record, size):
    """`record` with its image letterboxed onto a (size x size) canvas, held instead of the decoded image (a
    folder of phone photos would take 36 MB each); its boxes stay in image pixels. None: as it is."""
    if size is None or record is None or record.scale is not None:
        return record
    h, w = record.image.shape[:2]
    if (h, w) == (size, size):
        canvas, scale = record.image, np.ones(2, np.float32)
    else:
        canvas, scale = (t.numpy() for t in letterbox(record.image, size))
    return dataclasses.replace(record, image=canvas, image_hw=(h, w), scale=np.asarray(scale, np.float32))


class _Skips:
    """Collects per-file errors: raised at once, or counted and reported when skipping is on."""

    def __init__(self, skip):
        self.skip, self.errors = skip, []

    def run(self, fn, *args):
        try:
            return fn(*args)
        except DataError as e:
            if not self.skip:
                raise
            self.errors.append(str(e))
            return None

    def report(self, what):
        if self.errors:
            warnings.warn(f"skipped {len(self.errors)} bad {what}, e.g. {self.errors[0]}", stacklevel=3)


def _read_image(path, where):
    try:
        return read_image_file(path).numpy()
    except Exception as e:  # TF and Pillow raise many types for a broken file
        raise DataError(f"{where}: cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


_UPRIGHT = ("which the suite applies (as photo viewers do): annotate the upright image, or remove its orientation "
            "tag (exiftool -Orientation= FILE)")


def _stored_on_its_side(image_path):
    return image_path is not None and int(exif_orientation(tf.constant(Path(image_path).read_bytes()))) >= 5


def _checked(name, image, boxes, labels, crowd, member=None, image_path=None, recorded=None, iscrowd=None):
    """`recorded`: the (width, height) the annotation file gives for its image, if any: boxes drawn on a phone
    photo as stored (by a tool that ignores EXIF orientation) would land in the wrong place once it is upright.
    `iscrowd`: which of the `crowd` boxes are COCO crowd regions (VOC difficult objects are not)."""
    h, w = image.shape[:2]
    if recorded is not None and h != w and tuple(recorded) == (h, w) and _stored_on_its_side(image_path):
        raise DataError(f"{name}: annotated on the image as stored ({h}x{w}, width x height), but {image_path} has "
                        f"an EXIF orientation that turns it upright to {w}x{h}, {_UPRIGHT}")
    try:
        check_boxes(boxes, h, w, name)
    except DataError as e:
        if not _stored_on_its_side(image_path):
            raise
        raise DataError(f"{e}; {image_path} is stored on its side with an EXIF orientation, {_UPRIGHT}") from None
    boxes = np.clip(boxes, 0, [h, w, h, w]).astype(np.float32)
    return Annotated(name, image, boxes.reshape(-1, 4), np.asarray(labels, np.int32), np.asarray(crowd, bool), member,
                     None if iscrowd is None else np.asarray(iscrowd, bool))


def _escapes(file_name):
    """Whether an image name from an annotation file leaves the data set's folder (absolute, a drive, `..`)."""
    return any(p.anchor or ".." in p.parts for p in (PurePosixPath(file_name), PureWindowsPath(file_name)))


def _inside(folder, root):
    return folder == root or root in folder.parents


def _class_index(class_names, name, where):
    if name not in class_names:
        raise DataError(f"{where}: unknown class {name!r}; known classes: {', '.join(class_names)} (set them with --data.classes)")
    return class_names.index(name)


# ---- Pascal VOC ----

def _voc_tree(xml_path):
    text = xml_path.read_bytes()
    if not text.strip():
        raise DataError(f"{xml_path}: empty annotation file")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise DataError(f"{xml_path}: malformed XML ({e})") from None
    if root.tag != "annotation":
        raise DataError(f"{xml_path}: not a Pascal VOC annotation (root element <{root.tag}>, expected <annotation>)")
    return root


def _voc_text(node, tag, where):
    found = node.find(tag)
    if found is None or not (found.text or "").strip():
        raise DataError(f"{where}: malformed annotation: missing <{tag}>")
    return found.text.strip()


def _voc_image_path(xml_path, file_name, root):
    if _escapes(file_name):
        raise DataError(f"{xml_path}: <filename> {file_name!r} points outside the data set folder {root}; "
                        "name an image inside it")
    names = [file_name] if Path(file_name).suffix else [file_name + ext for ext in (".jpg", ".jpeg", ".png")]
    folders = [xml_path.parent, xml_path.parent.parent / "JPEGImages", xml_path.parent.parent / "images",
               root, root / "JPEGImages", root / "images"]
    folders = [f for f in dict.fromkeys(folders) if _inside(f, root)]  # never a folder above the data set's
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise DataError(f"{xml_path}: names image {file_name!r}, which is in none of "
                    f"{', '.join(sorted({str(f) for f in folders}))}")


def voc_class_names(xml_paths, skip_bad=False):
    """The sorted object names of the files; a bad file is an error (or left to the reader's skip report)."""
    names = set()
    for xml_path in xml_paths:
        try:
            names.update(_voc_text(o, "name", f"{xml_path} object {i}") for i, o in enumerate(_voc_tree(xml_path).iter("object"), 1))
        except DataError:
            if not skip_bad:
                raise
    return sorted(names)


def _read_voc_file(xml_path, root, class_names):
    tree = _voc_tree(xml_path)
    image_path = _voc_image_path(xml_path, _voc_text(tree, "filename", xml_path), root)
    boxes, labels, crowd = [], [], []
    for i, obj in enumerate(tree.iter("object"), 1):
        where = f"{xml_path} object {i}"
        labels.append(_class_index(class_names, _voc_text(obj, "name", where), where))
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DataError(f"{where}: malformed annotation: missing <bndbox>")
        try:
            coords = [float(_voc_text(bndbox, k, where)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError as e:
            raise DataError(f"{where}: malformed annotation: {e}") from None
        boxes.append(from_voc(*coords))
        crowd.append((obj.findtext("difficult") or "0").strip() == "1")
    image = _read_image(image_path, xml_path)
    member = {"annotation": xml_path.relative_to(root).as_posix(), "image": image_path.relative_to(root).as_posix()}
    return _checked(str(xml_path), image, np.asarray(boxes).reshape(-1, 4), labels, crowd, member, image_path,
                    _voc_size(tree))


def _voc_size(tree):
    """(width, height) of the annotation's <size>, None where it is missing or not a number."""
    try:
        return int(tree.findtext("size/width")), int(tree.findtext("size/height"))
    except (TypeError, ValueError):
        return None


def _voc_xml_files(root):
    """The .xml files under `root` a person put there: not macOS's ._a.xml shadows, nor the copies hidden
    folders hold (.ipynb_checkpoints/a-checkpoint.xml would be a duplicate image)."""
    return [p for p in user_files(root) if p.suffix == ".xml"]


def list_voc_files(root):
    """Relative paths of the .xml files under `root` (nothing opened)."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in _voc_xml_files(root)) if root.is_dir() else []


def load_voc(root, class_names=None, skip_bad=False, members=None, split="test", size=None):
    """Every <annotation> XML under `root` (a VOC year folder, or images/ + annotations/ folders), each image
    on a canvas of `size` as it is read (on_canvas).

    With `members` (a split record's {"annotation", "image"} relative paths), exactly those, in that
    order: members whose annotation or image file is gone are reported (data.split_record.report_gone)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"VOC folder not found: {root}")
    if members is not None:
        missing = [next((root / m[k] for k in ("annotation", "image") if not (root / m[k]).is_file()), None) for m in members]
        report_gone(split, [str(f) for f in missing if f], len(members), root)
        xml_paths = [root / m["annotation"] for m, f in zip(members, missing) if f is None]
    else:
        xml_paths = _voc_xml_files(root)
        if not xml_paths:
            raise DataError(f"no Pascal VOC .xml annotation files under {root}")
    class_names = list(class_names or voc_class_names(xml_paths, skip_bad))
    if not class_names:
        raise DataError(f"the annotation files under {root} name no object classes")
    skips = _Skips(skip_bad)
    records = [on_canvas(r, size) for r in (skips.run(_read_voc_file, p, root, class_names) for p in xml_paths) if r]
    skips.report("annotation files")
    return records, class_names


# ---- COCO ----

def _coco_json(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"COCO annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a JSON file ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DataError(f"{path}: malformed COCO annotations: no {key!r} list")
    return data


def coco_image_ids(annotation_file):
    """The image ids of a COCO instances JSON file (nothing else checked)."""
    try:
        return [im["id"] for im in _coco_json(annotation_file)["images"]]
    except (KeyError, TypeError) as e:
        raise DataError(f"{annotation_file}: malformed COCO annotations: missing field {e}") from None


def load_coco(annotation_file, image_dir, class_names=None, skip_bad=False, members=None, split="test", size=None):
    """Images and boxes of a COCO instances JSON file; images looked up in `image_dir`.

    With `members` (a split record's {"image_id", "file_name", "annotations"}), exactly those images, in
    that order, with their annotations as the file has them now: images gone from the file or the
    folder are reported (data.split_record.report_gone), changed annotation ids counted."""
    data, image_dir = _coco_json(annotation_file), Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"COCO image folder not found: {image_dir}")
    try:
        categories = {c["id"]: c["name"] for c in data["categories"]}
        by_image = {im["id"]: (im["file_name"], []) for im in data["images"]}
        sizes = {im["id"]: (im.get("width"), im.get("height")) for im in data["images"]}
        for a in data["annotations"]:
            if a["image_id"] not in by_image:
                raise DataError(f"{annotation_file}: annotation {a.get('id')} names image id {a['image_id']}, "
                                "which is not in 'images'")
            by_image[a["image_id"]][1].append(a)
    except (KeyError, TypeError) as e:
        raise DataError(f"{annotation_file}: malformed COCO annotations: missing field {e}") from None
    class_names = list(class_names or sorted(set(categories.values()), key=list(categories.values()).index))
    images = list(by_image.items())
    if members is not None:
        def here(m):  # a name leaving the folder stays, to be refused by read()
            name = by_image[m["image_id"]][0] if m["image_id"] in by_image else None
            return name is not None and (_escapes(name) or (image_dir / name).is_file())
        present = [here(m) for m in members]
        report_gone(split, [f"{image_dir / m['file_name']} (image id {m['image_id']})" for m, h in zip(members, present) if not h],
                    len(members), image_dir)
        images = [(m["image_id"], by_image[m["image_id"]]) for m, h in zip(members, present) if h]
        changed = sum(_ids(by_image[m["image_id"]][1]) != sorted(map(str, m["annotations"]))
                      for m, h in zip(members, present) if h)
        if changed:
            print(f"{changed} image(s) of the run's {split} split have other annotations in {annotation_file} than "
                  "when the splits were recorded; their current annotations are used")

    def read(image_id, file_name, anns):
        where = f"{annotation_file} image {file_name!r}"
        if _escapes(file_name):
            raise DataError(f"{annotation_file}: image {image_id} file_name {file_name!r} points outside the image "
                            f"folder {image_dir}; name a file inside it")
        labels = []
        for a in anns:
            if a.get("category_id") not in categories:
                raise DataError(f"{where}: annotation {a.get('id')} has unknown category_id {a.get('category_id')}")
            labels.append(_class_index(class_names, categories[a["category_id"]], where))
        try:
            boxes = from_coco([a["bbox"] for a in anns])
        except (KeyError, ValueError) as e:
            raise DataError(f"{where}: malformed bbox ({e})") from None
        if not (image_dir / file_name).is_file():
            raise DataError(f"{where}: image file {image_dir / file_name} does not exist")
        image = _read_image(image_dir / file_name, where)
        member = {"image_id": image_id, "file_name": file_name, "annotations": [a.get("id") for a in anns]}
        crowd = [bool(a.get("iscrowd", 0)) for a in anns]
        return _checked(where, image, boxes, labels, crowd, member, image_dir / file_name, sizes.get(image_id), crowd)

    skips = _Skips(skip_bad)
    records = [on_canvas(r, size) for r in (skips.run(read, image_id, *v) for image_id, v in images) if r]
    skips.report("images")
    return records, class_names


def _ids(anns):
    return sorted(str(a.get("id")) for a in anns)


# ---- tfds (voc, coco/2017, ...) ----

def load_tfds_detection(name, data_dir, split, size=None):
    """One split of a prepared tfds detection set (features image + objects/bbox, objects/label), each image on
    a canvas of `size` (on_canvas)."""
    builder = open_tfds(name, data_dir, split)
    objects = builder.info.features["objects"]
    class_names = list(objects["label"].names)
    crowd_key = next((k for k in ("is_crowd", "is_difficult") if k in objects), None)
    records = []
    for i, ex in enumerate(builder.as_dataset(split=split).as_numpy_iterator()):
        image = ex["image"]
        h, w = image.shape[:2]
        obj = ex["objects"]
        crowd = obj[crowd_key] if crowd_key else np.zeros(len(obj["label"]), bool)
        records.append(on_canvas(_checked(f"{name}[{split}][{i}]", image, from_relative(obj["bbox"], h, w), obj["label"],
                                          crowd, iscrowd=crowd if crowd_key == "is_crowd" else None), size))
    return records, class_names
