"""read_tfjs_weights: tiny manifests written here with known values, every error naming its file, and
the shipped dlib weights dequantised by hand from their first bytes."""
import json

import numpy as np
import pytest

from backbones import BackboneError
from backbones.dlib_face import DEFAULT_WEIGHTS
from backbones.tfjs_weights import read_tfjs_weights


def write(tmp_path, groups, shards):
    for name, data in shards.items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "model-weights_manifest.json"
    path.write_text(json.dumps(groups))
    return path


F32 = np.array([[1.5, -2.0, 0.25]], "<f4")
U8 = np.array([0, 1, 255, 128], "u1")  # x 0.5 - 10
U16 = np.array([0, 1000, 65535], "<u2")  # x 0.001 + 1
F16 = np.array([0.5, -3.0], "<f2")
I32 = np.array([7, -1], "<i4")


def manifest(tmp_path):
    """Two groups: five tensors of every kind in one group spread over two shards (split inside a
    tensor), and one tensor in a second group."""
    data = F32.tobytes() + U8.tobytes() + U16.tobytes() + F16.tobytes()
    groups = [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": [
        {"name": "dense/kernel", "shape": [1, 3], "dtype": "float32"},
        {"name": "conv/bias", "shape": [2, 2], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -10.0}},
        {"name": "u16", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint16", "scale": 0.001, "min": 1}},
        {"name": "half", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}}]},
        {"paths": ["group2-shard1of1.bin"], "weights": [{"name": "steps", "shape": [2], "dtype": "int32"}]}]
    return write(tmp_path, groups, {"group1-shard1of2.bin": data[:14], "group1-shard2of2.bin": data[14:],
                                    "group2-shard1of1.bin": I32.tobytes()})


def test_every_kind_of_tensor_with_known_values(tmp_path):
    arrays = read_tfjs_weights(manifest(tmp_path))
    assert list(arrays) == ["dense/kernel", "conv/bias", "u16", "half", "steps"]
    assert all(a.dtype == np.float32 for a in arrays.values())
    np.testing.assert_array_equal(arrays["dense/kernel"], F32)
    np.testing.assert_array_equal(arrays["conv/bias"], [[-10.0, -9.5], [117.5, 54.0]])
    np.testing.assert_allclose(arrays["u16"], [1.0, 2.0, 66.535], rtol=1e-6)
    np.testing.assert_array_equal(arrays["half"], [0.5, -3.0])
    np.testing.assert_array_equal(arrays["steps"], [7.0, -1.0])


def test_a_missing_shard_names_it(tmp_path):
    path = manifest(tmp_path)
    (tmp_path / "group1-shard2of2.bin").unlink()
    with pytest.raises(BackboneError, match=r"shard .*group1-shard2of2.bin \(listed in .*manifest.json\) not found"):
        read_tfjs_weights(path)


def test_shards_too_short_or_too_long(tmp_path):
    path = manifest(tmp_path)
    shard = tmp_path / "group1-shard2of2.bin"
    data = shard.read_bytes()
    shard.write_bytes(data[:-1])
    with pytest.raises(BackboneError, match=r"manifest.json are too short: tensor 'half' needs bytes 22..26 "
                                            r"of group 0, whose shards .* hold 25"):
        read_tfjs_weights(path)
    shard.write_bytes(data + b"\0")
    with pytest.raises(BackboneError, match=r"manifest.json do not fit: group 0's shards .* hold 27 bytes, "
                                            r"its tensors 26"):
        read_tfjs_weights(path)


@pytest.mark.parametrize("groups,message", [
    ("not json", "is not JSON"),
    ([], "non-empty list of groups"),
    ([{"weights": []}], "group 0 needs a list 'paths'"),
    ([{"paths": [], "weights": [{"shape": [1]}]}], "a weights entry without a 'name'"),
    ([{"paths": [], "weights": [{"name": "w", "shape": [-1]}]}], "tensor 'w' has no valid 'shape'"),
    ([{"paths": [], "weights": [{"name": "w", "shape": [1], "dtype": "string"}]}], "tensor 'w' has dtype 'string'"),
    ([{"paths": [], "weights": [{"name": "w", "shape": [1], "quantization": {"dtype": "int4"}}]}],
     "quantised as 'int4'"),
    ([{"paths": [], "weights": [{"name": "w", "shape": [1], "quantization": {"dtype": "uint8", "scale": 1}}]}],
     "without a numeric 'scale' and 'min'"),
    ([{"paths": [], "weights": [{"name": "w", "shape": [0]}, {"name": "w", "shape": [0]}]}], "lists tensor 'w' twice"),
])
def test_bad_manifests_are_named(tmp_path, groups, message):
    path = tmp_path / "bad-weights_manifest.json"
    path.write_text(groups if isinstance(groups, str) else json.dumps(groups))
    with pytest.raises(BackboneError) as error:
        read_tfjs_weights(path)
    assert str(path) in str(error.value) and message in str(error.value), str(error.value)


def test_a_missing_manifest(tmp_path):
    with pytest.raises(BackboneError, match=r"manifest not found: .*absent.json"):
        read_tfjs_weights(tmp_path / "absent.json")


def test_the_shipped_dlib_weights_dequantise_as_by_hand():
    """The .bin's first bytes are 79, 119, 148, 132: codes of conv32_down/conv/filters, whose manifest
    entry says scale 0.0005260649557207145, min -0.07101876902229645; q * scale + min by hand."""
    arrays = read_tfjs_weights(DEFAULT_WEIGHTS)
    assert len(arrays) == 117 and sum(a.size for a in arrays.values()) == 5_614_592
    assert DEFAULT_WEIGHTS.with_name("face_recognition_model.bin").read_bytes()[:4] == bytes([79, 119, 148, 132])
    np.testing.assert_allclose(arrays["conv32_down/conv/filters"].reshape(-1)[:4],
                               [-0.0294596375, -0.0084170393, 0.0068388444, -0.0015781949], rtol=1e-6)
    # the last tensor, fc, fills the file's last 256 x 128 bytes: 109, 100, 143, ...
    np.testing.assert_allclose(arrays["fc"].reshape(-1)[:3],
                               [109 * 0.000357687911566566 - 0.04578405268052045,
                                100 * 0.000357687911566566 - 0.04578405268052045,
                                143 * 0.000357687911566566 - 0.04578405268052045], rtol=1e-6)
