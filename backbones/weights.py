"""Weights files for pretrained backbones: checked against the network before anything is loaded."""
import socket
from pathlib import Path

import h5py
import numpy as np

from backbones.registry import BackboneError


def require_network(arch, host="storage.googleapis.com"):
    """Fail fast, with the way out, when a keras.applications download cannot happen."""
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise BackboneError(
            f"ImageNet weights for {arch} need a download, and {host} cannot be reached; pass a local weights "
            f"file with --model.weights /path/to/{arch.lower()}_notop.weights.h5") from None


def h5_arrays(group):
    """Every dataset under an h5py group, in visiting order."""
    arrays = []
    group.visititems(lambda _, obj: arrays.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def open_h5(path):
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"weights file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise BackboneError(f"weights file {path} is not an HDF5 file") from None


def load_weights_file(model, path, arch):
    """model.load_weights, after checking that the file's array shapes are the model's: Keras only
    warns, and keeps fresh weights, for parts of a file that do not match."""
    with open_h5(path) as f:
        in_file = sorted(a.shape for a in h5_arrays(f))
    in_model = sorted(tuple(w.shape) for w in model.weights)
    if in_file != in_model:
        missing = sorted(set(in_model) - set(in_file)) or sorted(set(in_file) - set(in_model))
        raise BackboneError(f"weights file {path} does not fit {arch}: it holds {len(in_file)} arrays, {arch} has "
                            f"{len(in_model)}" + (f" (e.g. shape {missing[0]} is not in both)" if missing else ""))
    try:
        model.load_weights(Path(path))
    except (ValueError, KeyError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackboneError(f"weights file {path} does not fit {arch}: {first}") from None
