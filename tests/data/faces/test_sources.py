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
        load_tfds_faces("lfw", None, 64)
    with pytest.raises(DataError, match="not prepared"):
        load_tfds_faces("lfw", str(tmp_path), 64)


def test_tfds_lfw_prepared_offline_is_sized_as_it_is_read(tmp_path):
    """tfds `lfw` prepared locally from six faces of three people (the real builder's features, our pixels): every
    split read, identities from the names, each face framed and resized as read (held at 64x64, not 250x250)."""
    import tensorflow_datasets as tfds

    from data.faces.pipeline import FaceDataConfig, load_face_splits

    real = tfds.builder_cls("lfw")
    faces = [np.full((250, 250, 3), 30 * i, np.uint8) for i in range(6)]
    for i, face in enumerate(faces):
        face[:125] = 255 - 30 * i  # top half bright: a bottom square crop must leave only the dark half's rows

    class TinyLfw(real, skip_registration=True):
        name = "lfw"

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, face in enumerate(faces):
                yield i, {"label": ("Ann_A", "Bob_B", "Cy_C")[i % 3], "image": face}

    TinyLfw(data_dir=str(tmp_path)).download_and_prepare()
    loaded = load_tfds_faces("lfw", str(tmp_path), 64)
    assert loaded.images.shape == (6, 64, 64, 3) and loaded.class_names == ["Ann_A", "Bob_B", "Cy_C"]
    assert sorted(loaded.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    bottom = load_tfds_faces("lfw", str(tmp_path), 64, ("bottom", 0.5))
    assert all(len(np.unique(image)) == 1 for image in bottom.images)  # the dark bottom half alone
    cfg = FaceDataConfig(source="tfds", tfds_name="lfw", data_dir=str(tmp_path), folds=3)
    splits = load_face_splits(cfg, 0, 64)
    assert splits["train"].images.shape[1:] == (64, 64, 3) and len(splits["test"].labels) == 2


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
