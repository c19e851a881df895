"""darknet's own files, read without darknet: the network `.cfg`, the `.weights` file and `.names`.

A cfg is an INI-like list of sections: `[net]` (input size, training settings) then one section per
layer, numbered from 0 in file order; a `[route]`'s `layers` count back from it when negative.

    [convolutional]
    batch_normalize=1
    filters=32
    size=3
    stride=2
    pad=1
    activation=leaky

A weights file is a header of three int32 (major, minor, revision) and the number of images seen in
training (int64 from version 0.2 on, int32 before), then, for every `[convolutional]` in cfg order,
float32 little-endian: with batch_normalize the batch norm's beta, gamma, running mean and running
variance, else the bias (each [filters] values), then the kernel as filters x in x size x size. Nothing
says which cfg a weights file belongs to, so the reader checks that the cfg's convolutions use up the
file exactly.

    >>> sections = parse_darknet_cfg("yolov4-tiny.cfg")
    >>> header, convs = read_darknet_weights("yolov4-tiny.weights", conv_specs(sections), "yolov4-tiny.cfg")
    >>> convs[0].kernel.shape
    (32, 3, 3, 3)
"""
import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from backbones.registry import BackboneError

# How to get darknet's YOLOv4-tiny files, for the error a missing file raises.
WHERE_TO_GET = ("darknet's releases have them (github.com/AlexeyAB/darknet: cfg/yolov4-tiny.cfg, data/coco.names and "
                "the yolov4-tiny.weights release asset); this project keeps a copy in "
                "../shared/data/weights/yolov4-tiny-coco/ beside the checkout: pass that file's path")


@dataclasses.dataclass
class Section:
    """One `[kind]` section: its options as written (strings) and where it is, for error messages."""

    kind: str
    options: dict
    where: str = "<generated>"  # file:line of the section header
    lines: dict = dataclasses.field(default_factory=dict)  # key -> file:line where it is set

    def _value(self, key, default, convert, what):
        if key not in self.options:
            if default is None:
                raise BackboneError(f"{self.where}: [{self.kind}] needs {key}=")
            return default
        try:
            return convert(self.options[key])
        except ValueError:
            where = self.lines.get(key, self.where)
            raise BackboneError(f"{where}: [{self.kind}] {key}={self.options[key]!r} is not {what}") from None

    def int(self, key, default=None):
        return self._value(key, default, int, "an integer")

    def float(self, key, default=None):
        return self._value(key, default, float, "a number")

    def str(self, key, default=None):
        return self._value(key, default, str.strip, "text")

    def ints(self, key, default=None):
        return self._value(key, default, lambda v: [int(p) for p in v.split(",") if p.strip()], "a list of integers")

    def floats(self, key, default=None):
        return self._value(key, default, lambda v: [float(p) for p in v.split(",") if p.strip()], "a list of numbers")


def section(kind, **options):
    """A Section written in Python (options as darknet would read them from text)."""
    text = {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for k, v in options.items()}
    return Section(kind, text)


def _require_file(path, what):
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"darknet {what} not found: {path}; {WHERE_TO_GET}")
    return path


def parse_darknet_cfg(path):
    """[Section] of a darknet cfg file, the first being [net] (or [network]). Comments (# or ;) and blank
    lines are skipped; a line that is neither a section header nor key=value is an error naming the line."""
    path = _require_file(path, "cfg file")
    sections = []
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{path}:{number}"
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise BackboneError(f"{where}: a section header must look like [convolutional]; got {line!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, where))
        elif "=" in line and sections:
            key, value = (part.strip() for part in line.split("=", 1))
            sections[-1].options[key] = value
            sections[-1].lines[key] = where
        else:
            raise BackboneError(f"{where}: expected [section] or key=value{' inside a section' if '=' in line else ''}; "
                                f"got {line!r}")
    if not sections or sections[0].kind not in ("net", "network"):
        raise BackboneError(f"darknet cfg {path} must start with a [net] section")
    if len(sections) < 2:
        raise BackboneError(f"darknet cfg {path} has no layers after [net]")
    return sections


def read_class_names(path):
    """The class names of a darknet `.names` file, one a line (blank lines skipped)."""
    path = _require_file(path, "class names file")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def route_inputs(layers, index):
    """Absolute layer indices of a [route]'s `layers` (negative ones count back from `index`)."""
    return [i if i >= 0 else index + i for i in layers]


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """What a [convolutional] holds in a weights file."""

    index: int  # the layer's number in the cfg (0 = first layer after [net])
    filters: int
    in_channels: int
    size: int
    batch_normalize: bool

    @property
    def count(self):
        return self.filters * (4 if self.batch_normalize else 1) + self.filters * self.in_channels * self.size ** 2


def conv_specs(sections, channels=None):
    """ConvSpec of every [convolutional] in order, its input channels followed through the cfg."""
    channels = [channels or sections[0].int("channels", 3)]  # channels[i + 1]: output of layer i
    specs = []
    for index, s in enumerate(sections[1:]):
        previous = channels[-1]
        if s.kind == "convolutional":
            spec = ConvSpec(index, s.int("filters"), previous, s.int("size"), bool(s.int("batch_normalize", 0)))
            specs.append(spec)
            out = spec.filters
        elif s.kind == "route":
            sources = route_inputs(s.ints("layers"), index)
            if not all(0 <= i < index for i in sources):
                raise BackboneError(f"{s.where}: [route] layers={s.options['layers']} refers to a layer that is not "
                                    f"before layer {index}")
            out = sum(channels[i + 1] for i in sources) // s.int("groups", 1)
        else:  # maxpool, upsample, yolo and the like keep their input's channels
            out = previous
        channels.append(out)
    return specs


@dataclasses.dataclass
class ConvWeights:
    spec: ConvSpec
    kernel: np.ndarray  # (filters, in, size, size), darknet's layout
    bias: Optional[np.ndarray] = None  # without batch norm
    beta: Optional[np.ndarray] = None  # with batch norm: beta, gamma, running mean, running variance
    gamma: Optional[np.ndarray] = None
    mean: Optional[np.ndarray] = None
    variance: Optional[np.ndarray] = None


def read_darknet_weights(path, specs, cfg_name="the cfg"):
    """(header {"major", "minor", "revision", "seen"}, [ConvWeights] in the order of `specs`). The file
    must hold exactly what the convolutions need: a BackboneError names the file, the cfg, the sizes
    expected and found, and the convolution at which a short file ends."""
    path = _require_file(path, "weights file")
    data = path.read_bytes()
    if len(data) < 12:
        raise BackboneError(f"darknet weights {path} are {len(data)} bytes: too short for the 12-byte version header")
    major, minor, revision = (int(v) for v in np.frombuffer(data, "<i4", 3))
    seen_type = "<i8" if major * 10 + minor >= 2 else "<i4"
    offset = 12 + np.dtype(seen_type).itemsize
    if len(data) < offset:
        raise BackboneError(f"darknet weights {path} are {len(data)} bytes: too short for the {offset}-byte header")
    header = {"major": major, "minor": minor, "revision": revision,
              "seen": int(np.frombuffer(data, seen_type, 1, 12)[0])}
    needed = offset + 4 * sum(spec.count for spec in specs)
    if len(data) != needed:
        detail = ""
        if len(data) < needed:
            end, at = offset, None
            for spec in specs:
                end += 4 * spec.count
                if end > len(data):
                    at = spec
                    break
            detail = (f"; the file ends inside convolution {specs.index(at) + 1} of {len(specs)} "
                      f"(layer {at.index}, {at.filters} filters {at.size}x{at.size} on {at.in_channels} channels)")
        raise BackboneError(f"darknet weights {path} do not fit {cfg_name}: its {len(specs)} convolutions need "
                            f"{needed} bytes ({offset}-byte header, version {major}.{minor}.{revision}, then "
                            f"{(needed - offset) // 4} float32), the file has {len(data)}{detail}")
    floats = np.frombuffer(data, "<f4", (needed - offset) // 4, offset)
    convs, at = [], 0

    def take(shape):
        nonlocal at
        n = int(np.prod(shape))
        values = floats[at:at + n].reshape(shape).astype(np.float32)  # a copy, writable
        at += n
        return values

    for spec in specs:
        f = spec.filters
        if spec.batch_normalize:
            beta, gamma, mean, variance = take((f,)), take((f,)), take((f,)), take((f,))
            kernel = take((f, spec.in_channels, spec.size, spec.size))
            convs.append(ConvWeights(spec, kernel, beta=beta, gamma=gamma, mean=mean, variance=variance))
        else:
            bias = take((f,))
            convs.append(ConvWeights(spec, take((f, spec.in_channels, spec.size, spec.size)), bias=bias))
    return header, convs
