"""Face readers: the embedded AT&T set, identity folders (PGM too), tfds by name offline, LFW pairs.txt."""
import numpy as np
import pytest
from PIL import Image

from data.errors import DataError
from data.faces.sources import load_embedded_faces, load_identity_folders, load_tfds_faces, read_lfw_pairs


def make_people(root, people=("ann", "bob", "cy"), per_person=3, fmt="png", size=(24, 20)):
    rng = np.random.default_rng(0)
    for person in people:
        (root / person).mkdir(parents=True)
        for i in range(per_person):
            pixels = rng.integers(0, 255, size, dtype=np.uint8)
            name = f"{person}_{i + 1:04d}.{fmt}" if fmt != "pgm" else f"{i + 1}.pgm"
            Image.fromarray(pixels).save(root / person / name, format="PPM" if fmt == "pgm" else None)
    return root


def test_embedded_att_faces():
    faces = load_embedded_faces()
    assert faces.images.shape == (400, 112, 92, 1) and faces.images.dtype == np.uint8
    assert len(faces.class_names) == 40 and np.bincount(faces.labels).tolist() == [10] * 40
    assert faces.files[0] == "s1/1.pgm"


@pytest.mark.parametrize("fmt", ["png", "pgm"])
def test_identity_folders(tmp_path, fmt):
    faces = load_identity_folders(make_people(tmp_path / "people", fmt=fmt), 32, skip_bad=False)
    assert faces.images.shape == (9, 32, 32, 3)
    assert faces.class_names == ["ann", "bob", "cy"] and faces.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_identity_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="identity-folder data not found: .*nowhere"):
        load_identity_folders(tmp_path / "nowhere", 32, skip_bad=False)
    root = make_people(tmp_path / "people")
    (root / "bob" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        load_identity_folders(root, 32, skip_bad=False)


def test_tfds_needs_a_prepared_set(tmp_path):
    with pytest.raises(DataError, match="needs --data.data_dir"):
        load_tfds_faces("lfw", None)
    with pytest.raises(DataError, match="not prepared"):
        load_tfds_faces("lfw", str(tmp_path))


def test_lfw_pairs(tmp_path):
    root = make_people(tmp_path / "lfw", people=("Ann_A", "Bob_B"), per_person=2, fmt="jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2 1\nAnn_A 1 2\nAnn_A 1 Bob_B 2\nBob_B 1 2\nBob_B 1 Ann_A 2\n")
    file_a, file_b, same, fold = read_lfw_pairs(pairs, root)
    assert file_a[1] == "Ann_A/Ann_A_0001.jpg" and file_b[1] == "Bob_B/Bob_B_0002.jpg"
    assert same.tolist() == [True, False, True, False] and fold.tolist() == [0, 0, 1, 1]
    (root / "Bob_B" / "Bob_B_0002.jpg").rename(root / "Bob_B" / "Bob_B_0002.png")  # another format, the same name
    assert read_lfw_pairs(pairs, root)[1][1] == "Bob_B/Bob_B_0002.png"
    pairs.write_text("2\nAnn_A 1 2\nBob_B 1 2\nAnn_A 1 Bob_B 2\nBob_B 1 Ann_A 2\n")  # View 1: pairsDevTest.txt
    _, _, same, fold = read_lfw_pairs(pairs, root)
    assert same.tolist() == [True, True, False, False] and fold.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("text, message", [
    ("two 1\n", "expected '<folds> <pairs per fold>'"),
    ("two\n", "or, as LFW's View 1 files, '<pairs>'"),
    ("1 1\nAnn_A 1 2\n", "the header promises 1 folds x 2 x 1 pairs"),
    ("1 1\nAnn_A 1 2\nAnn_A one Bob_B 2\n", "pairs.txt:3: expected 'name n1 n2'"),
    ("1 1\nAnn_A 1 3\nAnn_A 1 Bob_B 2\n", "missing under .*Ann_A_0003.jpg"),
])
def test_lfw_pairs_errors(tmp_path, text, message):
    root = make_people(tmp_path / "lfw", people=("Ann_A", "Bob_B"), per_person=2, fmt="jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(text)
    with pytest.raises(DataError, match=message):
        read_lfw_pairs(pairs, root)


def test_lfw_pairs_need_their_folder(tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 1\n")
    with pytest.raises(DataError, match="needs --data.path"):
        read_lfw_pairs(pairs, None)
    with pytest.raises(DataError, match="pairs file not found"):
        read_lfw_pairs(tmp_path / "none.txt", tmp_path)
