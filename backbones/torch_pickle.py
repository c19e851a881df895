"""Read the tensors of a `torch.save` file into NumPy arrays, without PyTorch.

Why: the suite ports a few published PyTorch checkpoints (EfficientNet-Lite0 is 19 MB) to Keras
once, offline. Installing PyTorch (~800 MB) to read one state dict is out of proportion, and
`torch.load` of an untrusted pickle can run arbitrary code. This reader rebuilds only what a
state dict holds: an (Ordered)dict of tensors. Its unpickler resolves a short allow-list of
globals (the tensor rebuild functions, the storage classes, OrderedDict) and refuses everything
else, so a hostile file fails instead of executing.

Both on-disk layouts of `torch.save` are read:
- the zip layout (PyTorch >= 1.6): `<archive>/data.pkl` holds the object; each storage is the raw
  entry `<archive>/data/<key>`; persistent ids are `('storage', StorageType, key, location, numel)`;
- the legacy layout (PyTorch < 1.6, and `_use_new_zipfile_serialization=False`): five pickles in a
  row (magic number, protocol version, sys info, the object, the list of storage keys), then for
  each key its element count (int64) and its raw bytes; persistent ids are
  `('storage', StorageType, key, location, numel, view_metadata)`.

>>> state = read_state_dict("efficientnet-lite0-57934424.pth")    # doctest: +SKIP
>>> state["_conv_stem.weight"].shape                                # doctest: +SKIP
(32, 3, 3, 3)
"""
import collections
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# Storage class name -> element type (NumPy has no bfloat16: such tensors are refused by name).
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class StorageType:
    """Stands in for `torch.FloatStorage` and friends while unpickling."""

    def __init__(self, name):
        if name not in STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported tensor storage type torch.{name}")
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class Storage:
    """One flat storage: its key in the file, element type and (once read) its 1-D array."""

    def __init__(self, key, storage_type, numel):
        self.key = key
        self.dtype = storage_type.dtype
        self.numel = int(numel)
        self.array = None


class StorageView:
    """A legacy view of part of a root storage (old files only)."""

    def __init__(self, root, offset, numel):
        self.root = root
        self.offset = int(offset)
        self.numel = int(numel)


class TensorRef:
    """A tensor whose storage bytes may not be read yet (legacy files store them after the pickle)."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)


def rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # Covers torch._utils._rebuild_tensor and _rebuild_tensor_v2 (requires_grad, hooks, metadata).
    return TensorRef(storage, storage_offset, size, stride)


def rebuild_parameter(data, *unused):
    return data


SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class TorchUnpickler(pickle.Unpickler):
    """Unpickles a torch.save object graph, collecting its storages by key."""

    def __init__(self, file, path):
        super().__init__(file, encoding="utf-8")
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[module, name]
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        raise pickle.UnpicklingError(f"{self.path}: refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self.path}: unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, StorageType):
            raise pickle.UnpicklingError(f"{self.path}: storage {key} has no storage type")
        storage = self.storages.setdefault(key, Storage(key, storage_type, numel))
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            _view_key, offset, view_numel = view
            return StorageView(storage, offset, view_numel)
        return storage


def materialise(ref, path):
    """The tensor `ref` as an owned, native-endian NumPy array (honours offset, size and stride)."""
    storage, offset = ref.storage, ref.offset
    if isinstance(storage, StorageView):
        storage, offset = storage.root, storage.offset + offset
    flat = storage.array
    if any(s == 0 for s in ref.size):
        return np.zeros(ref.size, flat.dtype.newbyteorder("="))
    last = offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if offset < 0 or min(ref.stride, default=0) < 0 or last >= flat.size:
        raise ValueError(f"{path}: tensor of size {ref.size}, stride {ref.stride} and offset {offset} "
                         f"does not fit its storage {storage.key} of {flat.size} elements")
    view = np.lib.stride_tricks.as_strided(flat[offset:], ref.size, [s * flat.itemsize for s in ref.stride],
                                           writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


def resolve(obj, path):
    """Replaces every TensorRef inside dicts, lists and tuples by its array."""
    if isinstance(obj, TensorRef):
        return materialise(obj, path)
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = resolve(v, path)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(resolve(v, path) for v in obj)
    return obj


def read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{path}: a zip file, but not a torch.save archive (no <archive>/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode().strip()
        with archive.open(pickles[0]) as f:
            unpickler = TorchUnpickler(f, path)
            obj = unpickler.load()
        for key, storage in unpickler.storages.items():
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise ValueError(f"{path}: storage entry {entry} is missing")
            raw = archive.read(entry)
            storage.array = np.frombuffer(raw, storage.dtype.newbyteorder("<" if byteorder == "little" else ">"))
    return obj


def read_legacy(path, f):
    """`f` is positioned just after the magic number."""
    if TorchUnpickler(f, path).load() != LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"{path}: unsupported legacy torch.save protocol version")
    sys_info = TorchUnpickler(f, path).load()
    order = "<" if sys_info.get("little_endian", True) else ">"
    unpickler = TorchUnpickler(f, path)
    obj = unpickler.load()
    keys = TorchUnpickler(f, path).load()
    for key in keys:
        storage = unpickler.storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise ValueError(f"{path}: truncated before storage {key}")
        (numel,) = struct.unpack(order + "q", header)
        raw = f.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise ValueError(f"{path}: truncated inside storage {key}")
        storage.array = np.frombuffer(raw, storage.dtype.newbyteorder(order))
    return obj


def read_torch_file(path):
    """The object saved by `torch.save`, with every tensor as a NumPy array."""
    path = str(path)
    if zipfile.is_zipfile(path):
        obj = read_zip(path)
    else:
        with open(path, "rb") as f:
            try:
                magic = TorchUnpickler(f, path).load()
            except Exception:  # any non-pickle bytes: report the file below, whatever the parser tripped on
                magic = None
            if magic != LEGACY_MAGIC_NUMBER:
                raise ValueError(f"{path} is not a torch.save file (neither a zip archive with data.pkl "
                                 "nor a legacy pickle starting with torch's magic number)")
            obj = read_legacy(path, f)
    return resolve(obj, path)


def read_state_dict(path):
    """An OrderedDict parameter name -> np.ndarray from a torch.save'd state dict.

    Accepts a bare state dict or a checkpoint dict holding one under "state_dict" or "model".
    """
    obj = read_torch_file(path)
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    return collections.OrderedDict(obj)
