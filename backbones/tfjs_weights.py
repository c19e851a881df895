"""A reader of TensorFlow.js weights: a `*weights_manifest.json` plus the binary shards it names.

The manifest is a list of groups, each {"paths": [shard files], "weights": [{"name", "shape", "dtype",
"quantization"?}]}; a group's tensors are stored back to back, in manifest order, across the
concatenation of its shards (little-endian). A quantised tensor is stored as uint8 or uint16 codes q
with value = q * scale + min, or as float16 (tfjs' `quantization: {"dtype": "float16"}`).

    >>> arrays = read_tfjs_weights("face_recognition_model-weights_manifest.json")
    >>> arrays["fc"].shape, arrays["fc"].dtype
    ((256, 128), dtype('float32'))
"""
import json
from pathlib import Path

import numpy as np

from backbones.registry import BackboneError

# Stored dtype -> numpy dtype (little-endian) of an unquantised tensor.
_PLAIN = {"float32": "<f4", "int32": "<i4"}
# Quantised codes; uint8 and uint16 are affine (scale, min), float16 is a plain cast.
_QUANTISED = {"uint8": "<u1", "uint16": "<u2", "float16": "<f2"}


def read_tfjs_weights(manifest_path):
    """{name: float32 array} of every tensor the manifest lists, dequantised, in manifest order.
    A BackboneError names the file at fault: a manifest that is not one, a missing shard, shards
    shorter or longer than the tensors they must hold, or a name listed twice."""
    manifest_path = Path(manifest_path)
    groups = _read_manifest(manifest_path)
    arrays = {}
    for group_index, group in enumerate(groups):
        data = b"".join(_read_shard(manifest_path, p) for p in group["paths"])
        offset = 0
        for entry in group["weights"]:
            name, shape, dtype, quantization = _entry(manifest_path, group_index, entry)
            if name in arrays:
                raise BackboneError(f"tfjs manifest {manifest_path} lists tensor {name!r} twice")
            stored = _QUANTISED[quantization["dtype"]] if quantization else _PLAIN[dtype]
            count = int(np.prod(shape, dtype=np.int64))
            size = count * np.dtype(stored).itemsize
            if offset + size > len(data):
                raise BackboneError(f"tfjs weights for {manifest_path} are too short: tensor {name!r} needs bytes "
                                    f"{offset}..{offset + size} of group {group_index}, whose shards "
                                    f"({', '.join(group['paths'])}) hold {len(data)}")
            values = np.frombuffer(data, stored, count, offset).reshape(shape)
            if quantization and quantization["dtype"] != "float16":
                # In float64, then rounded once, as tfjs does (JavaScript numbers into a Float32Array).
                values = values * float(quantization["scale"]) + float(quantization["min"])
            arrays[name] = values.astype(np.float32)
            offset += size
        if offset != len(data):
            raise BackboneError(f"tfjs weights for {manifest_path} do not fit: group {group_index}'s shards "
                                f"({', '.join(group['paths'])}) hold {len(data)} bytes, its tensors {offset}")
    return arrays


def _read_manifest(path):
    if not path.is_file():
        raise BackboneError(f"tfjs weights manifest not found: {path}")
    try:
        groups = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BackboneError(f"tfjs weights manifest {path} is not JSON ({e})") from None
    if not isinstance(groups, list) or not groups:
        raise BackboneError(f"tfjs weights manifest {path} must be a non-empty list of groups with 'paths' and "
                            "'weights'")
    for i, group in enumerate(groups):
        if (not isinstance(group, dict) or not isinstance(group.get("paths"), list)
                or not all(isinstance(p, str) for p in group["paths"]) or not isinstance(group.get("weights"), list)):
            raise BackboneError(f"tfjs weights manifest {path}: group {i} needs a list 'paths' of shard file names "
                                f"and a list 'weights'")
    return groups


def _read_shard(manifest_path, relative):
    shard = manifest_path.parent / relative
    if not shard.is_file():
        raise BackboneError(f"tfjs weights shard {shard} (listed in {manifest_path}) not found")
    return shard.read_bytes()


def _entry(path, group_index, entry):
    """(name, shape, dtype, quantization or None) of one manifest entry, checked."""
    where = f"tfjs weights manifest {path}, group {group_index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BackboneError(f"{where}: a weights entry without a 'name': {str(entry)[:80]}")
    name, shape, dtype = entry["name"], entry.get("shape"), entry.get("dtype", "float32")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BackboneError(f"{where}: tensor {name!r} has no valid 'shape' (got {shape!r})")
    if dtype not in _PLAIN:
        raise BackboneError(f"{where}: tensor {name!r} has dtype {dtype!r}; this reader takes {', '.join(_PLAIN)}")
    quantization = entry.get("quantization")
    if quantization is None:
        return name, shape, dtype, None
    q_dtype = quantization.get("dtype") if isinstance(quantization, dict) else None
    if q_dtype not in _QUANTISED:
        raise BackboneError(f"{where}: tensor {name!r} is quantised as {q_dtype!r}; this reader takes "
                            f"{', '.join(_QUANTISED)}")
    if q_dtype != "float16" and not all(isinstance(quantization.get(k), (int, float)) for k in ("scale", "min")):
        raise BackboneError(f"{where}: tensor {name!r} is quantised to {q_dtype} without a numeric 'scale' and 'min'")
    return name, shape, dtype, quantization
