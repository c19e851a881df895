"""Pascal VOC and COCO readers: boxes converted once, and every bad file named."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from data import DataError
from data.boxes.sources import list_voc_files, load_coco, load_tfds_detection, load_voc

VOC_OBJECT = ("<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
              "<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")


def write_voc(root, name, objects, size=(40, 60), image=True):
    """images/<name>.jpg (height, width = size) and annotations/<name>.xml with (class, x0, y0, x1, y1[, difficult])."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    if image:
        Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(root / "images" / f"{name}.jpg")
    body = "".join(VOC_OBJECT.format(name=o[0], x0=o[1], y0=o[2], x1=o[3], y1=o[4], difficult=o[5] if len(o) > 5 else 0)
                   for o in objects)
    xml = (f"<annotation><filename>{name}.jpg</filename><size><width>{size[1]}</width><height>{size[0]}</height>"
           f"<depth>3</depth></size>{body}</annotation>")
    (root / "annotations" / f"{name}.xml").write_text(xml)
    return root / "annotations" / f"{name}.xml"


def test_voc_boxes_classes_and_difficult(tmp_path):
    write_voc(tmp_path, "a", [("raccoon", 1, 1, 60, 40), ("dog", 11, 6, 30, 20, 1)])
    write_voc(tmp_path, "b", [("dog", 5, 5, 10, 10)])
    records, names = load_voc(tmp_path)
    assert names == ["dog", "raccoon"] and [r.image.shape for r in records] == [(40, 60, 3)] * 2
    np.testing.assert_array_equal(records[0].boxes, [[0, 0, 40, 60], [5, 10, 20, 30]])  # VOC is 1-based, inclusive
    np.testing.assert_array_equal(records[0].labels, [1, 0])
    np.testing.assert_array_equal(records[0].crowd, [False, True])


def test_images_are_held_on_their_canvas_as_they_are_read(tmp_path):
    """A reader given the canvas size keeps each image letterboxed, not decoded whole (500 phone photos would
    take 18 GB): the detection set is the one letterboxed afterwards."""
    from data.boxes.pipeline import to_detection_set

    write_voc(tmp_path, "a", [("raccoon", 1, 1, 60, 40)], size=(40, 60))
    write_voc(tmp_path, "b", [("dog", 5, 5, 10, 10)], size=(90, 30))
    held, names = load_voc(tmp_path, size=32)
    assert [r.image.shape for r in held] == [(32, 32, 3)] * 2 and [r.image_hw for r in held] == [(40, 60), (90, 30)]
    whole, _ = load_voc(tmp_path)
    a, b = to_detection_set(held, names, 32), to_detection_set(whole, names, 32)
    for field in ("canvas", "scale", "image_hw"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))


def test_a_phone_photo_is_read_upright_and_boxes_drawn_on_it_as_stored_are_refused_saying_why(tmp_path):
    xml = write_voc(tmp_path, "phone", [("dog", 5, 5, 30, 30)])  # <size> 60x40: the photo as stored
    exif = Image.Exif()
    exif[0x0112] = 8  # stored on its side: a quarter turn anticlockwise shows it upright (40 wide, 60 high)
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(tmp_path / "images" / "phone.jpg", exif=exif.tobytes())
    with pytest.raises(DataError, match=r"phone.xml: annotated on the image as stored \(60x40, width x height\), but "
                                        r".*phone.jpg has an EXIF orientation that turns it upright to 40x60, .*annotate"):
        load_voc(tmp_path)  # the box would fit the upright photo too, in the wrong place
    xml.write_text(xml.read_text().replace("<size><width>60</width><height>40</height><depth>3</depth></size>", "")
                   .replace("<xmax>30</xmax>", "<xmax>55</xmax>"))
    with pytest.raises(DataError, match=r"phone.xml: box .* lies outside the 40x60 image; .*phone.jpg is stored on its "
                                        r"side with an EXIF orientation.*annotate the upright image"):
        load_voc(tmp_path)  # no <size>: a box outside the upright photo tells
    write_voc(tmp_path, "phone", [("dog", 5, 5, 30, 55)], size=(60, 40), image=False)  # drawn on the upright photo
    (record,), _ = load_voc(tmp_path)
    assert record.image.shape == (60, 40, 3)


def test_voc_errors_name_the_file(tmp_path):
    bad = write_voc(tmp_path, "outside", [("dog", 5, 5, 70, 10)])
    with pytest.raises(DataError, match=r"outside.xml: box .*x_max 70.* lies outside the 60x40 image"):
        load_voc(tmp_path)
    bad.unlink()
    write_voc(tmp_path, "missing", [("dog", 5, 5, 10, 10)], image=False)
    with pytest.raises(DataError, match=r"missing.xml: names image 'missing.jpg', which is in none of"):
        load_voc(tmp_path)
    (tmp_path / "annotations" / "missing.xml").unlink()
    write_voc(tmp_path, "cat", [("cat", 5, 5, 10, 10)])
    with pytest.raises(DataError, match=r"cat.xml object 1: unknown class 'cat'; known classes: dog"):
        load_voc(tmp_path, class_names=["dog"])
    (tmp_path / "annotations" / "cat.xml").write_text("")
    with pytest.raises(DataError, match="cat.xml: empty annotation file"):
        load_voc(tmp_path)
    (tmp_path / "annotations" / "cat.xml").write_text("<annotation><filename>cat.jpg</filename>")
    with pytest.raises(DataError, match="cat.xml: malformed XML"):
        load_voc(tmp_path)
    (tmp_path / "annotations" / "cat.xml").write_text("<annotation><filename>cat.jpg</filename><object><name>dog</name></object></annotation>")
    with pytest.raises(DataError, match="cat.xml object 1: malformed annotation: missing <bndbox>"):
        load_voc(tmp_path)


def test_voc_skip_bad_files_reports_them(tmp_path):
    write_voc(tmp_path, "good", [("dog", 5, 5, 10, 10)])
    write_voc(tmp_path, "outside", [("dog", 5, 5, 70, 10)])
    with pytest.warns(UserWarning, match=r"skipped 1 bad annotation files, e.g. .*outside.xml"):
        records, _ = load_voc(tmp_path, skip_bad=True)
    assert [r.name.split("/")[-1] for r in records] == ["good.xml"]


def test_voc_ignores_macos_shadows_and_hidden_folders(tmp_path):
    """A folder unzipped on a Mac (._a.xml: not XML) or used from a notebook (a second a.xml in .ipynb_checkpoints/)."""
    xml = write_voc(tmp_path, "a", [("dog", 5, 5, 10, 10)])
    (tmp_path / "annotations" / "._a.xml").write_bytes(b"\0\5\26\7Mac OS X")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.xml").write_text(xml.read_text())
    records, names = load_voc(tmp_path)
    assert [r.name for r in records] == [str(xml)] and names == ["dog"]
    assert list_voc_files(tmp_path) == ["annotations/a.xml"]


def test_voc_folder_without_annotations(tmp_path):
    with pytest.raises(DataError, match="VOC folder not found"):
        load_voc(tmp_path / "nope")
    with pytest.raises(DataError, match="no Pascal VOC .xml annotation files under"):
        load_voc(tmp_path)


def write_coco(tmp_path, annotations, categories=({"id": 7, "name": "cat"}, {"id": 3, "name": "dog"})):
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "img" / "one.png")
    data = {"images": [{"id": 1, "file_name": "one.png", "width": 50, "height": 30}],
            "annotations": annotations, "categories": list(categories)}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json", tmp_path / "img"


def test_coco_boxes_and_classes(tmp_path):
    ann, img = write_coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]},
                                     {"id": 2, "image_id": 1, "category_id": 7, "bbox": [0, 0, 50, 30], "iscrowd": 1}])
    records, names = load_coco(ann, img)
    assert names == ["cat", "dog"]
    np.testing.assert_allclose(records[0].boxes, [[5, 10, 15, 30], [0, 0, 30, 50]])
    np.testing.assert_array_equal(records[0].labels, [1, 0])
    np.testing.assert_array_equal(records[0].crowd, [False, True])


def test_coco_errors(tmp_path):
    ann, img = write_coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]}])
    with pytest.raises(DataError, match="'one.png': annotation 1 has unknown category_id 99"):
        load_coco(ann, img)
    ann, img = write_coco(tmp_path, [{"id": 4, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2]}])
    with pytest.raises(DataError, match="annotation 4 names image id 2, which is not in 'images'"):
        load_coco(ann, img)
    ann, img = write_coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [40, 1, 20, 2]}])
    with pytest.raises(DataError, match="'one.png': box .* lies outside the 50x30 image"):
        load_coco(ann, img)
    (img / "one.png").unlink()
    ann, _ = write_coco(tmp_path, [])
    (img / "one.png").unlink()
    with pytest.raises(DataError, match=r"image file .*one.png does not exist"):
        load_coco(ann, img)
    ann.write_text("{not json")
    with pytest.raises(DataError, match="ann.json: not a JSON file"):
        load_coco(ann, img)
    ann.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="malformed COCO annotations: no 'annotations' list"):
        load_coco(ann, img)
    ann.write_text(json.dumps({"images": [{"file_name": "x.png"}], "annotations": [], "categories": []}))
    with pytest.raises(DataError, match="malformed COCO annotations: missing field 'id'"):
        load_coco(ann, img)


def test_tfds_detection_offline_errors(tmp_path):
    with pytest.raises(DataError, match="needs --data.data_dir"):
        load_tfds_detection("voc/2007", None, "train")
    with pytest.raises(DataError, match="is not prepared in .*tfds build voc/2007"):
        load_tfds_detection("voc/2007", str(tmp_path), "train")


def test_tfds_detection_set_prepared_offline(tmp_path):
    """A tiny tfds builder with the features of voc/coco, prepared from local arrays, read by name."""
    import tensorflow_datasets as tfds

    class TinyBoxes(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "objects": tfds.features.Sequence({"bbox": tfds.features.BBoxFeature(),
                                                   "label": tfds.features.ClassLabel(names=["cat", "dog"]),
                                                   "is_crowd": tfds.features.Tensor(shape=(), dtype=np.bool_)})}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(2), "validation": self._generate_examples(1)}

        def _generate_examples(self, n):
            for i in range(n):
                yield i, {"image": np.zeros((40, 80, 3), np.uint8),
                          "objects": {"bbox": [tfds.features.BBox(0.25, 0.5, 0.75, 1.0)], "label": [1], "is_crowd": [i == 1]}}

    TinyBoxes(data_dir=str(tmp_path)).download_and_prepare()
    records, names = load_tfds_detection("tiny_boxes", str(tmp_path), "train")
    assert names == ["cat", "dog"] and len(records) == 2 and records[0].image.shape == (40, 80, 3)
    np.testing.assert_allclose(records[0].boxes, [[10, 40, 30, 80]])  # relative yxyx -> pixels
    assert sorted(bool(r.crowd[0]) for r in records) == [False, True]
    with pytest.raises(DataError, match="has no split 'test'"):
        load_tfds_detection("tiny_boxes", str(tmp_path), "test")


@pytest.mark.parametrize("file_name", ["../outside.jpg", "images/../../outside.jpg", "/tmp/outside.jpg", "C:\\outside.jpg"])
def test_voc_filename_outside_the_data_set_is_refused(tmp_path, file_name):
    root = tmp_path / "voc"
    xml = write_voc(root, "a", [("dog", 5, 5, 10, 10)])
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "outside.jpg")  # exists, but is not the data set's
    xml.write_text(xml.read_text().replace("<filename>a.jpg</filename>", f"<filename>{file_name}</filename>"))
    with pytest.raises(DataError, match=rf"{re.escape(str(xml))}: <filename> .* points outside the data set folder {re.escape(str(root))}"):
        load_voc(root)


def test_voc_images_are_looked_up_inside_the_data_set_only(tmp_path):
    """An .xml right under the data folder does not find its image in the folder above (../images)."""
    root = tmp_path / "voc"
    write_voc(tmp_path, "a", [("dog", 5, 5, 10, 10)])  # tmp_path/images/a.jpg, outside root
    root.mkdir()
    (tmp_path / "annotations" / "a.xml").rename(root / "a.xml")
    with pytest.raises(DataError, match=r"a.xml: names image 'a.jpg', which is in none of"):
        load_voc(root)


@pytest.mark.parametrize("file_name", ["../one.png", "img/../../one.png", "/tmp/one.png"])
def test_coco_file_name_outside_the_image_folder_is_refused(tmp_path, file_name):
    ann, img = write_coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2]}])
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "one.png")  # exists, but outside img/
    data = json.loads(ann.read_text())
    data["images"][0]["file_name"] = file_name
    ann.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"{re.escape(str(ann))}: image 1 file_name .* points outside the image folder {re.escape(str(img))}"):
        load_coco(ann, img)
