"""Split records (data/split_record.py): a folder's splits stay put when files are added or removed."""
import dataclasses
import json
import re

import numpy as np
import pytest
from PIL import Image

from data import DataError
from data.images.pipeline import ImageDataConfig, load_splits, split_record
from data.split_record import read_record, write_record

CFG = ImageDataConfig(source="folder", image_size=16, val_fraction=0.25, test_fraction=0.25)


def _members(sets):
    return {name: list(s.files) for name, s in sets.items()}


def test_recorded_folder_splits_do_not_move(class_folder, tmp_path, capsys):
    cfg = dataclasses.replace(CFG, path=str(class_folder))
    before = load_splits(cfg, seed=0)
    path = tmp_path / "run" / "data" / "splits.json"
    write_record(split_record(cfg, 0, before), path)
    record = read_record(path)
    assert record["members"]["test"][0] == {"path": before["test"].files[0], "label": "cat"}
    assert sorted(sum(_members(before).values(), [])) == sorted(f"{c}/{i:03d}.{'jpg' if i % 2 else 'png'}"
                                                                  for c in ("cat", "dog", "frog") for i in range(12))

    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(class_folder / "cat" / "new.png")  # one more cat
    assert _members(load_splits(cfg, seed=0))["test"] != _members(before)["test"]  # a re-scan moves files around

    gone = class_folder / before["test"].files[0]
    gone.unlink()
    with pytest.warns(UserWarning, match=rf"1 of the 9 files of the run's test split are gone, e.g. {re.escape(str(gone))}; using the other 8"):
        after = load_splits(cfg, seed=0, record=record)
    assert "1 image file(s) under" in capsys.readouterr().out
    assert _members(after)["test"] == _members(before)["test"][1:]
    for name in ("train", "val"):
        assert _members(after)[name] == _members(before)[name]
        np.testing.assert_array_equal(after[name].images, before[name].images)
        np.testing.assert_array_equal(after[name].labels, before[name].labels)

    with pytest.warns(UserWarning, match="1 of the 9 files"):
        only_test = load_splits(cfg, seed=0, record=record, names=("test",))
    assert list(only_test) == ["test"] and only_test["test"].files == after["test"].files


def test_all_members_gone_is_an_error_and_flags_may_not_change(class_folder, tmp_path):
    cfg = dataclasses.replace(CFG, path=str(class_folder))
    record = split_record(cfg, 0, load_splits(cfg, seed=0))
    with pytest.raises(DataError, match=r"made with other data flags \(seed 0 -> 1, test_fraction 0.25 -> 0.5\)"):
        load_splits(dataclasses.replace(cfg, test_fraction=0.5), seed=1, record=record)
    for m in record["members"]["test"]:
        (class_folder / m["path"]).unlink()
    with pytest.raises(DataError, match=r"all 9 files of the run's test split are gone from .*, e.g. "):
        load_splits(cfg, seed=0, record=record, names=("test",))
    moved = tmp_path / "moved"
    class_folder.rename(moved)  # a data set moved elsewhere is found again by its relative paths
    assert len(load_splits(dataclasses.replace(cfg, path=str(moved)), seed=0, record=record, names=("train",))["train"].files) == 21


def test_fixed_sources_record_their_identity_only():
    cfg = ImageDataConfig(limit=200)
    record = split_record(cfg, 3, load_splits(cfg, seed=3))
    assert record["members"] is None and record["recipe"] == {"source": "fashion_mnist"}
    assert record["class_names"][0] == "t-shirt/top"


def test_record_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "data" / "splits.json"
    write_record({"version": 1, "recipe": {}, "members": None}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        write_record({"version": 1, "recipe": {"changed": True}, "members": None}, path)
    assert [p.name for p in path.parent.iterdir()] == ["splits.json"]  # no temporary file left behind
    assert read_record(path)["recipe"] == {}  # the old record is whole
    path.write_text("{broken")
    with pytest.raises(DataError, match="split record .*splits.json is unreadable"):
        read_record(path)
    assert read_record(tmp_path / "none.json") is None
