import gzip

import numpy as np
import pytest

from data import DataError
from data.images.idx import read_idx
from data.images.sources import load_idx_folder


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_round_trip_and_folder(tmp_path):
    images = np.arange(5 * 4 * 4).reshape(5, 4, 4) % 256
    labels = np.array([0, 1, 2, 1, 0])
    for prefix in ("train", "t10k"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), images)
    sets = load_idx_folder(tmp_path)
    assert sets["train"].images.shape == (5, 4, 4, 1) and sets["test"].class_names == ["0", "1", "2"]


def test_truncated_and_bad_magic(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((3, 2, 2)))
    raw = gzip.open(tmp_path / "a.gz").read()
    with gzip.open(tmp_path / "b.gz", "wb") as f:
        f.write(raw[:-3])
    with pytest.raises(DataError, match="b.gz is truncated"):
        read_idx(tmp_path / "b.gz")
    (tmp_path / "c").write_bytes(b"\x12\x34\x56\x78")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "c")
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        load_idx_folder(tmp_path)
