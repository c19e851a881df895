"""EfficientNet-Lite0: the torch.save reader (on files written here, without torch), the layer plan,
its pyramid strides, TensorFlow "SAME" padding, the PyTorch-name mapping and the shipped weights."""
import collections
import io
import pickle
import struct
import zipfile

import h5py
import keras
import numpy as np
import pytest

from backbones import BackboneError
from backbones import convert_efficientnet_lite as convert
from backbones import torch_pickle
from backbones.efficientnet_lite import (DEFAULT_WEIGHTS, FEATURE_LAYERS, PYRAMID_LAYERS, efficientnet_lite0,
                                         load_efficientnet_lite0_weights)
from tests.backbones.fake_torch import FakeTensor, fake_torch  # noqa: F401 (a fixture)


# --- torch.save files written the way torch writes them, with stand-ins for torch's globals ---------

class StorageRef:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


def torch_pickle_bytes(obj, torch, legacy):
    class TorchPickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, StorageRef):
                pid = ("storage", torch.FloatStorage, o.key, "cpu", o.numel)
                return pid + (None,) if legacy else pid  # legacy ids end with view metadata
            return None

    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


STORAGE = np.arange(12, dtype="<f4")


def state_dict():
    storage = StorageRef("0", STORAGE.size)
    return collections.OrderedDict([
        ("w", FakeTensor(storage, (2, 3), (3, 1), offset=0)),   # rows of the first 6 values
        ("t", FakeTensor(storage, (3, 2), (1, 3), offset=6)),   # a transposed view of the last 6
    ])


def check_state(state):
    assert list(state) == ["w", "t"]
    np.testing.assert_array_equal(state["w"], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(state["t"], [[6, 9], [7, 10], [8, 11]])
    assert state["t"].dtype == np.float32


def test_reads_zip_torch_save(tmp_path, fake_torch):
    path = tmp_path / "tiny.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tiny/data.pkl", torch_pickle_bytes(state_dict(), fake_torch, legacy=False))
        z.writestr("tiny/byteorder", "little")
        z.writestr("tiny/data/0", STORAGE.tobytes())
        z.writestr("tiny/version", "3\n")
    check_state(torch_pickle.read_state_dict(path))


def test_reads_legacy_torch_save(tmp_path, fake_torch):
    path = tmp_path / "tiny_legacy.pth"
    with open(path, "wb") as f:
        for header in (torch_pickle.LEGACY_MAGIC_NUMBER, torch_pickle.LEGACY_PROTOCOL_VERSION,
                       {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(torch_pickle_bytes(state_dict(), fake_torch, legacy=True))
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", STORAGE.size) + STORAGE.tobytes())
    check_state(torch_pickle.read_state_dict(path))


def test_refuses_other_files_and_globals(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.pth is not a torch.save file"):
        torch_pickle.read_state_dict(text)
    hostile = tmp_path / "hostile.pth"
    with zipfile.ZipFile(hostile, "w") as z:
        z.writestr("x/data.pkl", pickle.dumps({"a": print}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"hostile.pth: refusing to load global (__builtin__|builtins)"):
        torch_pickle.read_state_dict(hostile)


# --- the network -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model224():
    model = efficientnet_lite0((224, 224, 3))
    load_efficientnet_lite0_weights(model)
    return model


@pytest.mark.parametrize("size", [224, 64])
def test_pyramid_strides(size, model224):
    model = model224 if size == 224 else efficientnet_lite0((size, size, 3))
    assert model.count_params() == 3_413_024
    grids = {level: model.get_layer(name).output.shape[1:3] for level, name in PYRAMID_LAYERS.items()}
    assert grids == {f"P{n}": (size // 2**n, size // 2**n) for n in range(1, 6)}
    assert all(model.get_layer(name) for name in FEATURE_LAYERS)
    assert model.output.shape[1:] == (size // 32, size // 32, 1280)


def test_stem_pads_like_tensorflow(model224):
    """A stride-2 'SAME' conv of an even input pads 0 rows above and 1 below (the checkpoint's padding)."""
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("float32")
    small = efficientnet_lite0((8, 8, 3))
    small.get_layer("stem_conv").set_weights(model224.get_layer("stem_conv").get_weights())
    got = keras.Model(small.input, small.get_layer("stem_conv").output)(x).numpy()[0]
    kernel = model224.get_layer("stem_conv").get_weights()[0]
    padded = np.pad(x[0], ((0, 1), (0, 1), (0, 0)))
    want = np.stack([[np.einsum("hwc,hwco->o", padded[2 * i:2 * i + 3, 2 * j:2 * j + 3], kernel) for j in range(4)]
                     for i in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


GOLDEN_MEAN_STD = [0.053975, 0.363812]  # the shipped float16 weights on a linear ramp input


def test_shipped_weights_give_golden_features(model224):
    x = np.linspace(-1, 1, 224 * 224 * 3, dtype="float32").reshape(1, 224, 224, 3)
    y = model224.predict(x, verbose=0)
    assert np.all(np.isfinite(y)) and y.min() >= 0 and y.max() <= 6  # ReLU6 head
    np.testing.assert_allclose([y.mean(), y.std()], GOLDEN_MEAN_STD, rtol=2e-3)
    with h5py.File(DEFAULT_WEIGHTS) as f:
        assert f["block2a_dwconv/kernel"].dtype == np.float16 and f.attrs["license"] == "Apache-2.0"


def test_missing_or_wrong_weights_file(tmp_path):
    model = efficientnet_lite0((64, 64, 3))
    with pytest.raises(BackboneError, match="weights file not found: .*nowhere.h5"):
        load_efficientnet_lite0_weights(model, tmp_path / "nowhere.h5")
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.h5 is not an HDF5 file"):
        load_efficientnet_lite0_weights(model, text)
    wrong = tmp_path / "wrong.h5"
    with h5py.File(DEFAULT_WEIGHTS) as src, h5py.File(wrong, "w") as dst:
        for name in src:
            src.copy(name, dst)
        del dst["top_conv/kernel"]
        dst["top_conv/kernel"] = np.zeros((1, 1, 320, 1000), "float16")
    with pytest.raises(ValueError, match=r"wrong.h5 does not fit .*top_conv/kernel should be \(1, 1, 320, 1280\)"):
        load_efficientnet_lite0_weights(model, wrong)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["conv1/kernel"] = np.zeros((3, 3, 3, 8), "float16")
    with pytest.raises(ValueError, match="other.h5 does not fit"):
        load_efficientnet_lite0_weights(model, other)


def test_pytorch_names_map_one_to_one():
    """Keras weights -> a state dict named and shaped as the PyTorch port's -> back, each tensor used once."""
    model = efficientnet_lite0((64, 64, 3))
    blocks = {name: i for i, name in enumerate(convert.block_names())}
    state = collections.OrderedDict()
    for layer in model.layers:
        for weight in layer.weights:
            value = weight.numpy()
            prefix = convert.torch_prefix(layer.name, blocks)
            if isinstance(layer, keras.layers.BatchNormalization):
                state[f"{prefix}.{convert.BN_NAMES[weight.name]}"] = value
                state[f"{prefix}.num_batches_tracked"] = np.zeros((), "int64")
            elif isinstance(layer, keras.layers.DepthwiseConv2D):
                state[f"{prefix}.weight"] = value.transpose(2, 3, 0, 1)
            else:
                state[f"{prefix}.weight"] = value.transpose(3, 2, 0, 1)
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == 245
    state["_fc.weight"], state["_fc.bias"] = np.zeros((1000, 1280), "float32"), np.zeros(1000, "float32")
    weights = convert.convert_state(state, model, "synthetic.pth")
    for layer_name, arrays in weights.items():
        for weight in model.get_layer(layer_name).weights:
            np.testing.assert_array_equal(arrays[weight.name], weight.numpy())
    state["_blocks.3._extra.weight"] = np.zeros(1, "float32")
    with pytest.raises(ValueError, match=r"synthetic.pth: tensors unused \['_blocks.3._extra.weight'\]"):
        convert.convert_state(state, model, "synthetic.pth")
