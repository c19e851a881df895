"""Reader for the IDX files of MNIST / Fashion-MNIST (gzipped or not)."""
import gzip
from pathlib import Path

import numpy as np

from data.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Return the array stored in one IDX file, checking its header against its size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataError(f"{path} is truncated: header says {dims}, file holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims)


def find_idx_pair(folder, split):
    """(images, labels) paths of `split` ('train' or 't10k') in an MNIST-style folder."""
    folder = Path(folder)
    prefix = "train" if split == "train" else "t10k"
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        for suffix in (".gz", ""):
            for sep in ("-", "."):
                p = folder / f"{prefix}{sep}{kind}{suffix}"
                if p.is_file():
                    found.append(p)
                    break
            else:
                continue
            break
        else:
            raise DataError(f"IDX folder {folder} has no {prefix}-{kind}[.gz] file")
    return found
