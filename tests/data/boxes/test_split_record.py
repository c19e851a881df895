"""VOC and COCO splits recorded once stay put: images added since are ignored, images gone are reported."""
import dataclasses
import json
import re

import numpy as np
import pytest
from PIL import Image

from data import DataError
from data.boxes.pipeline import DetectionDataConfig, load_detection_splits, split_record
from data.split_record import read_record, write_record
from tests.data.boxes.test_sources import write_voc

SPLITS = ("train", "val", "test")


def _names(sets):
    return {name: [m["annotation"] if "annotation" in m else m["image_id"] for m in sets[name].members] for name in SPLITS}


def _recorded(cfg, sets, tmp_path):
    path = tmp_path / "run" / "data" / "splits.json"
    write_record(split_record(cfg, 0, sets), path)
    return read_record(path)


def test_voc_splits_do_not_move(tmp_path, capsys):
    root = tmp_path / "voc"
    for i in range(10):
        write_voc(root, f"im{i}", [("dog" if i % 2 else "cat", 5, 5, 20, 20)])
    cfg = DetectionDataConfig(source="voc", path=str(root), image_size=64, test_fraction=0.2, val_fraction=0.2)
    before = load_detection_splits(cfg, 0)
    record = _recorded(cfg, before, tmp_path)
    assert [len(record["members"][s]) for s in SPLITS] == [6, 2, 2] and record["class_names"] == ["cat", "dog"]
    assert record["members"]["test"][0]["image"].startswith("images/im")

    for i in range(10, 13):
        write_voc(root, f"im{i}", [("dog", 5, 5, 20, 20)])
    assert _names(load_detection_splits(cfg, 0)) != _names(before)  # a re-scan moves images between splits

    gone = root / record["members"]["test"][0]["image"]
    gone.unlink()
    with pytest.warns(UserWarning, match=rf"1 of the 2 files of the run's test split are gone, e.g. {re.escape(str(gone))}"):
        after = load_detection_splits(cfg, 0, record)
    assert f"3 annotation file(s) under {root} added since the run's splits were recorded are ignored" in capsys.readouterr().out
    assert _names(after)["test"] == _names(before)["test"][1:]
    for name in ("train", "val"):
        assert _names(after)[name] == _names(before)[name]
        np.testing.assert_array_equal(after[name].canvas, before[name].canvas)

    with pytest.raises(DataError, match=r"other data flags \(val_fraction 0.2 -> 0.3\)"):
        load_detection_splits(dataclasses.replace(cfg, val_fraction=0.3), 0, record)
    (root / record["members"]["test"][1]["annotation"]).unlink()
    with pytest.raises(DataError, match="all 2 files of the run's test split are gone"):
        load_detection_splits(cfg, 0, record, names=("test",))


def test_coco_splits_do_not_move(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    images, annotations = [], []
    for i in range(1, 13):
        Image.fromarray(np.full((30, 40, 3), 10 * i, np.uint8)).save(tmp_path / "img" / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": 40, "height": 30})
        annotations.append({"id": 100 + i, "image_id": i, "category_id": 1, "bbox": [2, 2, 10, 10]})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images[:10], "annotations": annotations[:10], "categories": [{"id": 1, "name": "box"}]}))
    cfg = DetectionDataConfig(source="coco", path=str(tmp_path / "img"), annotations=str(ann), image_size=64,
                              test_fraction=0.2, val_fraction=0.0)
    before = load_detection_splits(cfg, 0)
    assert before["val"] is None
    record = _recorded(cfg, before, tmp_path)
    assert record["members"]["val"] == [] and record["members"]["test"][0]["annotations"] == [100 + record["members"]["test"][0]["image_id"]]

    train_id = record["members"]["train"][0]["image_id"]
    extra = {"id": 999, "image_id": train_id, "category_id": 1, "bbox": [20, 10, 5, 5]}
    ann.write_text(json.dumps({"images": images, "annotations": annotations + [extra], "categories": [{"id": 1, "name": "box"}]}))
    gone = tmp_path / "img" / f"im{record['members']['test'][0]['image_id']}.png"
    gone.unlink()
    with pytest.warns(UserWarning, match=rf"1 of the 2 files of the run's test split are gone, e.g. {re.escape(str(gone))}"):
        after = load_detection_splits(cfg, 0, record)
    out = capsys.readouterr().out
    assert f"2 image(s) of {ann} added since the run's splits were recorded are ignored" in out
    assert "1 image(s) of the run's train split have other annotations" in out
    assert after["val"] is None
    assert _names_coco(after, "test") == [m["image_id"] for m in record["members"]["test"][1:]]
    assert _names_coco(after, "train") == [m["image_id"] for m in record["members"]["train"]]
    assert len(after["train"].boxes[0]) == 2  # the current annotations of a recorded image


def _names_coco(sets, name):
    return [m["image_id"] for m in sets[name].members]


def test_scenes_record_their_identity_only():
    cfg = DetectionDataConfig(image_size=64, train_scenes=8, val_scenes=0, test_scenes=4)
    sets = load_detection_splits(cfg, 0)
    record = split_record(cfg, 0, sets)
    assert record["members"] is None and record["recipe"] == {"source": "scenes", "scene_objects": "mnist"}
    assert list(load_detection_splits(cfg, 0, record, names=("test",))) == ["test"]


def test_test_folds_are_disjoint_and_cover_every_image(tmp_path):
    root = tmp_path / "voc"
    for i in range(10):
        write_voc(root, f"im{i}", [("dog", 5, 5, 20, 20)])
    cfg = DetectionDataConfig(source="voc", path=str(root), image_size=64, test_fraction=0.2, val_fraction=0.0)
    folds = [{name: [m["annotation"] for m in sets[name].members] for name in ("train", "test")}
             for sets in (load_detection_splits(dataclasses.replace(cfg, test_fold=k), 0) for k in range(5))]
    tests = [set(f["test"]) for f in folds]
    assert all(len(t) == 2 for t in tests) and set().union(*tests) == {f"annotations/im{i}.xml" for i in range(10)}
    assert all(not set(f["train"]) & set(f["test"]) and len(f["train"]) == 8 for f in folds)
    assert folds[0]["test"] == [m["annotation"] for m in load_detection_splits(cfg, 0)["test"].members]
    with pytest.raises(DataError, match="data.test_fold 5 is past the last whole fold: 10 images make 5 test parts of 2"):
        load_detection_splits(dataclasses.replace(cfg, test_fold=5), 0)
