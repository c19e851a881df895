"""Identity-disjoint splits, P x K batches (stateless per epoch), the split record of identity folders."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.errors import DataError
from data.faces.pipeline import (FaceDataConfig, describe_identities, identity_splits, identity_table, load_face_splits,
                                 pk_indices, split_record, train_epoch)
from data.split_record import write_record
from tests.data.faces.test_sources import make_people


def test_identity_splits_are_disjoint_and_cover_everyone():
    cfg = FaceDataConfig(folds=4, test_fold=1, val_identities=3)
    parts = identity_splits(40, cfg, seed=0)
    assert len(parts["test"]) == 10 and len(parts["val"]) == 3 and len(parts["train"]) == 27
    everyone = np.concatenate([parts["train"], parts["val"], parts["test"]])
    assert sorted(everyone.tolist()) == list(range(40))
    folds = [set(identity_splits(40, dataclasses.replace(cfg, test_fold=k), 0)["test"].tolist()) for k in range(4)]
    assert set().union(*folds) == set(range(40)) and sum(map(len, folds)) == 40  # the folds partition the people


def test_identity_split_errors():
    with pytest.raises(DataError, match="test_fold 4 must be below --data.folds 4"):
        identity_splits(40, FaceDataConfig(test_fold=4), 0)
    with pytest.raises(DataError, match="fewer than --data.folds"):
        identity_splits(3, FaceDataConfig(), 0)
    with pytest.raises(DataError, match="val_identities 29 leaves fewer than 2"):
        identity_splits(40, FaceDataConfig(val_identities=29), 0)


def test_embedded_splits_hold_unseen_people():
    splits = load_face_splits(FaceDataConfig(val_identities=2), seed=0, size=48)
    people = {name: set(s.labels.tolist()) for name, s in splits.items()}
    assert not people["train"] & people["test"] and not people["val"] & people["test"] and not people["train"] & people["val"]
    assert splits["train"].images.shape[1:] == (48, 48, 3) and len(people["test"]) == 10


def test_pk_indices():
    labels = np.repeat(np.arange(6), [5, 5, 5, 5, 3, 1])
    members, counts = identity_table(labels)
    assert members.shape == (6, 5) and counts.tolist() == [5, 5, 5, 5, 3, 1]
    seen = set()
    for step in range(30):
        batch = pk_indices(members, counts, p=3, k=4, seed=tf.constant([step, 0], tf.int64)).numpy()
        people, sizes = np.unique(labels[batch], return_counts=True)
        assert len(people) == 3 and len(set(batch.tolist())) == len(batch)  # P distinct people, no image twice
        assert all(c == min(4, (labels == p).sum()) for p, c in zip(people, sizes))
        seen |= set(people.tolist())
    assert seen == set(range(6))
    again = pk_indices(members, counts, 3, 4, tf.constant([0, 0], tf.int64)).numpy()
    np.testing.assert_array_equal(again, pk_indices(members, counts, 3, 4, tf.constant([0, 0], tf.int64)).numpy())
    split = type("S", (), {"labels": labels, "class_names": list("abcdef")})()
    assert "1 training identities have 2..3 images" in describe_identities(split, 4)
    small = type("S", (), {"labels": np.array([0, 0, 1, 1, 1, 2]), "class_names": ["a", "b", "c"]})()
    assert describe_identities(small, 3) == ("1 training identities have 2 images (fewer than K=3: all of them are "
                                             "used, smaller batches); 1 have a single image (negatives only)")
    assert describe_identities(small, 2) == "1 have a single image (negatives only)"  # not "0 ... have 2..1 images"
    with pytest.raises(DataError, match="at least 2 identities"):
        identity_table(np.zeros(4, int))


def test_train_epoch_batches():
    splits = load_face_splits(FaceDataConfig(), seed=0, size=32, names=("train",))
    cfg = FaceDataConfig(identities_per_batch=4, images_per_identity=3)
    batches = list(train_epoch(splits["train"], cfg, seed=0, epoch=0))
    assert len(batches) == 300 // 12
    x, y = batches[0]
    assert x.shape == (12, 32, 32, 3) and x.dtype.name == "float32" and len(set(y.numpy().tolist())) == 4
    x2, _ = next(iter(train_epoch(splits["train"], cfg, seed=0, epoch=tf.constant(0, tf.int64))))
    np.testing.assert_array_equal(x.numpy(), x2.numpy())  # a pure function of (seed, epoch)
    x3, _ = next(iter(train_epoch(splits["train"], cfg, seed=0, epoch=1)))
    assert not np.array_equal(x.numpy(), x3.numpy())


def test_folder_split_record_pins_the_files(tmp_path):
    root = make_people(tmp_path / "people", people=[f"p{i}" for i in range(8)], per_person=3)
    cfg = FaceDataConfig(source="folder", path=str(root), folds=4)
    splits = load_face_splits(cfg, seed=0, size=32)
    record = split_record(cfg, 0, splits)
    write_record(record, tmp_path / "splits.json")
    make_people(tmp_path / "people", people=["newcomer"], per_person=3)
    from data.split_record import read_record

    again = load_face_splits(cfg, seed=0, size=32, record=read_record(tmp_path / "splits.json"))
    assert again["test"].files == splits["test"].files
    with pytest.raises(DataError, match="test_fold 0 -> 1"):
        load_face_splits(dataclasses.replace(cfg, test_fold=1), 0, 32, record=read_record(tmp_path / "splits.json"))


def test_folder_faces_are_framed_once_in_every_read(tmp_path):
    """A tighter square (center, 0.5) of identity folders: cut once when the run starts, as a resume, evaluate
    and the export cut it (it was cut twice, to a quarter, in the first run's training split)."""
    from data.images.files import resize_uint8, to_square

    root = make_people(tmp_path / "people", people=[f"p{i}" for i in range(4)], per_person=2, size=(40, 30))
    cfg = FaceDataConfig(source="folder", path=str(root), folds=4, square="center", square_crop=0.5)
    first = load_face_splits(cfg, seed=0, size=16)
    write_record(split_record(cfg, 0, first), tmp_path / "splits.json")
    from data.split_record import read_record

    again = load_face_splits(cfg, seed=0, size=16, record=read_record(tmp_path / "splits.json"))
    for name in ("train", "test"):
        np.testing.assert_array_equal(first[name].images, again[name].images)
    raw = np.asarray(Image.open(root / first["test"].files[0]).convert("RGB"))
    expected = resize_uint8(to_square(raw, ("center", 0.5)), (16, 16)).numpy()
    np.testing.assert_array_equal(first["test"].images[0], expected)


def test_square_bottom_keeps_the_lower_square_of_each_face():
    from data.faces.sources import load_embedded_faces
    from data.images.files import resize_uint8

    faces = load_embedded_faces()
    splits = load_face_splits(FaceDataConfig(square="bottom"), seed=0, size=46, names=("test",))
    first = splits["test"].files[0]
    raw = faces.images[faces.files.index(first)]  # 112 x 92 x 1
    expected = resize_uint8(np.repeat(raw[-92:], 3, axis=-1), (46, 46)).numpy()
    np.testing.assert_array_equal(splits["test"].images[0], expected)


def test_att_faces_default_is_a_tighter_bottom_square():
    from data.faces.pipeline import ATT_SQUARE_CROP, square_mode
    from data.faces.sources import load_embedded_faces
    from data.images.files import resize_uint8

    assert square_mode(FaceDataConfig()) == ("bottom", ATT_SQUARE_CROP)
    assert square_mode(FaceDataConfig(square="bottom")) == "bottom"  # a chosen mode keeps its whole square
    assert square_mode(FaceDataConfig(square="center", square_crop=0.5)) == ("center", 0.5)
    assert square_mode(FaceDataConfig(source="folder")) == "stretch"
    faces = load_embedded_faces()
    splits = load_face_splits(FaceDataConfig(), seed=0, size=42, names=("test",))
    raw = faces.images[faces.files.index(splits["test"].files[0])]  # 112 x 92 x 1
    side = round(92 * ATT_SQUARE_CROP)  # 84: the lowest 84 rows, columns 4..87
    left = (92 - side) // 2
    expected = resize_uint8(np.repeat(raw[-side:, left:left + side], 3, axis=-1), (42, 42)).numpy()
    np.testing.assert_array_equal(splits["test"].images[0], expected)


def test_square_crop_needs_a_crop_mode():
    from tests.conftest import last_line, run_main

    FaceDataConfig(square_crop=0.8).check("data.")  # att_faces: bottom
    result = run_main("face_verification", "train", "--data.source", "folder", "--data.path", "x", "--data.square_crop", "0.8")
    assert result.returncode == 2 and last_line(result.stderr) == (
        "error: config key 'data.square_crop' (0.8) applies to data.square center, top or bottom, not stretch "
        "(command line)")
