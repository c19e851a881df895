"""darknet in Keras: the cfg parser, the weights reader on a tiny cfg and weights file written here (exact
values in the right Keras weights, darknet's own arithmetic checked against a numpy darknet), YOLO
decoding, and YOLOv4-tiny's COCO weights finding what darknet finds on two classic photos."""
import struct

import keras
import numpy as np
import pytest
from PIL import Image

from backbones.darknet import build_darknet, build_yolov4_tiny, load_darknet_weights, yolov4_tiny_sections
from backbones.darknet_files import conv_specs, parse_darknet_cfg, read_class_names, read_darknet_weights
from backbones.registry import BackboneError
from backbones.yolo_decode import YoloHead, decode_yolo, detect_image, detect_yolo
from tests.conftest import shared_data

COCO = "weights/yolov4-tiny-coco/"

# Every supported kind: a 3x3 stride-2 convolution (darknet pads it 1 on every side, Keras' "same"
# would not), a grouped route, a concatenating route, 2x2 max pools of stride 2 and 1 (on an odd map),
# an upsample and two heads.
TINY_CFG = """
[net]
# a comment
width=12
height = 12
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=2
pad=1
activation=leaky

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=2
size=3
stride=1
pad=1
activation=leaky

[route]
layers = -1, 0

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=1

[convolutional]
size=1
stride=1
pad=1
filters=12
activation=linear

[yolo]
mask = 0,1
anchors = 2,3,  4,5,  6,7
classes=1
num=3
scale_x_y = 1.1
jitter=.3

[route]
layers = -4

[upsample]
stride=2

[route]
layers = -1, 2

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=6
activation=linear

[yolo]
mask = 2
anchors = 2,3,  4,5,  6,7
classes=1
num=3
"""


def write_weights(path, specs, seed=0, version=(0, 2, 5), seen=64000):
    """A darknet weights file for `specs` with random values; returns the per-convolution arrays."""
    rng = np.random.default_rng(seed)
    arrays, chunks = [], []
    for spec in specs:
        f = spec.filters
        parts = {"kernel": rng.normal(0, 0.5, (f, spec.in_channels, spec.size, spec.size)).astype("<f4")}
        if spec.batch_normalize:
            parts.update(beta=rng.normal(0, 0.5, f), gamma=rng.uniform(0.5, 1.5, f), mean=rng.normal(0, 0.5, f),
                         variance=rng.uniform(0.5, 2.0, f))
            order = ["beta", "gamma", "mean", "variance", "kernel"]
        else:
            parts["bias"] = rng.normal(0, 0.5, f)
            order = ["bias", "kernel"]
        parts = {k: v.astype("<f4") for k, v in parts.items()}
        arrays.append(parts)
        chunks += [parts[k].tobytes() for k in order]
    major, minor, revision = version
    seen_bytes = struct.pack("<q" if major * 10 + minor >= 2 else "<i", seen)
    path.write_bytes(struct.pack("<3i", major, minor, revision) + seen_bytes + b"".join(chunks))
    return arrays


@pytest.fixture
def tiny(tmp_path):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG)
    sections = parse_darknet_cfg(cfg)
    weights = tmp_path / "tiny.weights"
    arrays = write_weights(weights, conv_specs(sections))
    return cfg, sections, weights, arrays


# --- the cfg ------------------------------------------------------------------------------------------

def test_cfg_sections_options_and_layout(tiny):
    cfg, sections, _, _ = tiny
    assert [s.kind for s in sections[:3]] == ["net", "convolutional", "route"]
    assert sections[0].int("height") == 12 and sections[2].ints("layers") == [-1]
    assert sections[4].ints("layers") == [-1, 0] and sections[8].floats("anchors") == [2, 3, 4, 5, 6, 7]
    assert sections[1].where == f"{cfg}:8" and sections[1].lines["stride"] == f"{cfg}:12"
    specs = conv_specs(sections)
    assert [(s.index, s.filters, s.in_channels, s.size, s.batch_normalize) for s in specs] == [
        (0, 4, 3, 3, True), (2, 2, 2, 3, False), (6, 12, 6, 1, False), (11, 4, 8, 3, True), (12, 6, 4, 1, False)]


@pytest.mark.parametrize("text, message", [
    ("[net]\nwidth=8\nfilters\n", r":3: expected \[section\] or key=value; got 'filters'"),
    ("width=8\n[net]\n", r":1: expected \[section\] or key=value inside a section"),
    ("[convolutional]\nfilters=2\n", r"must start with a \[net\] section"),
    ("[net]\nwidth=4\nheight=4\n[convolutional]\nfilters=two\nsize=1\n", r":5: \[convolutional\] filters='two' is not an integer"),
    ("[net]\nwidth=4\nheight=4\n[convolutional]\nfilters=2\nsize=3\nstride=1\ndilation=2\n",
     r"dilation=2 is not supported"),
    ("[net]\nwidth=4\nheight=4\n[shortcut]\nfrom=-1\n", r"\[shortcut\] is not supported"),
])
def test_cfg_errors_name_the_file_and_line(tmp_path, text, message):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text)
    with pytest.raises(BackboneError, match=message):
        build_darknet(parse_darknet_cfg(cfg))


def test_yolov4_tiny_written_here_is_darknets_cfg():
    parsed = parse_darknet_cfg(shared_data(COCO + "yolov4-tiny.cfg"))
    written = yolov4_tiny_sections()
    assert len(parsed) == len(written) == 39 and [s.kind for s in parsed] == [s.kind for s in written]

    def numbers(value):
        return [float(p) for p in value.split(",") if p.strip()] if value[0] in "-0123456789." else value

    for p, w in zip(parsed[1:], written[1:]):
        assert set(w.options) <= set(p.options), p.where
        assert {k: numbers(v) for k, v in w.options.items()} == {k: numbers(p.options[k]) for k in w.options}, p.where
    assert conv_specs(parsed) == conv_specs(written)


# --- the weights file ------------------------------------------------------------------------------------

def test_every_value_lands_in_its_keras_weight(tiny):
    _, sections, weights, arrays = tiny
    model = build_darknet(sections)
    header = load_darknet_weights(model, weights)
    assert header == {"major": 0, "minor": 2, "revision": 5, "seen": 64000}
    for spec, parts in zip(conv_specs(sections), arrays):
        conv = model.get_layer(f"conv_{spec.index}").get_weights()
        kernel = conv[0]
        for o, i, h, w in [(0, 0, 0, 0), (spec.filters - 1, spec.in_channels - 1, spec.size - 1, 0), (1, 0, 0, spec.size - 1)]:
            assert kernel[h, w, i, o] == parts["kernel"][o, i, h, w]
        np.testing.assert_array_equal(kernel, parts["kernel"].transpose(2, 3, 1, 0))
        if spec.batch_normalize:
            assert len(conv) == 1
            gamma, beta, mean, variance = model.get_layer(f"bn_{spec.index}").get_weights()
            for got, key in [(gamma, "gamma"), (beta, "beta"), (mean, "mean"), (variance, "variance")]:
                np.testing.assert_array_equal(got, parts[key])
        else:
            np.testing.assert_array_equal(conv[1], parts["bias"])


def darknet_forward(sections, arrays, pixels):
    """darknet's forward pass in plain numpy (HWC): what the Keras model must compute."""
    x, outputs, heads, convs = pixels.astype(np.float64) / 255, [], [], iter(arrays)
    for index, s in enumerate(sections[1:]):
        if s.kind == "convolutional":
            w, size, stride = next(convs), s.int("size"), s.int("stride")
            pad = size // 2
            padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
            n_h, n_w = (x.shape[0] + 2 * pad - size) // stride + 1, (x.shape[1] + 2 * pad - size) // stride + 1
            y = np.zeros((n_h, n_w, s.int("filters")))
            for r in range(n_h):
                for c in range(n_w):
                    patch = padded[r * stride:r * stride + size, c * stride:c * stride + size]
                    y[r, c] = np.einsum("hwi,oihw->o", patch, w["kernel"])
            if "gamma" in w:
                y = (y - w["mean"]) / np.sqrt(w["variance"] + 1e-5) * w["gamma"] + w["beta"]
            else:
                y = y + w["bias"]
            x = np.where(y > 0, y, 0.1 * y) if s.options["activation"] == "leaky" else y
        elif s.kind == "route":
            groups, group_id = s.int("groups", 1), s.int("group_id", 0)
            parts = [outputs[i if i >= 0 else index + i] for i in s.ints("layers")]
            x = np.concatenate([np.split(p, groups, axis=-1)[group_id] for p in parts], axis=-1)
        elif s.kind == "maxpool":
            size, stride = s.int("size"), s.int("stride")
            pad = size - 1
            n_h, n_w = (x.shape[0] + pad - size) // stride + 1, (x.shape[1] + pad - size) // stride + 1
            y = np.zeros((n_h, n_w, x.shape[2]))
            for r in range(n_h):
                for c in range(n_w):
                    r0, c0 = r * stride - pad // 2, c * stride - pad // 2  # cells outside are skipped
                    y[r, c] = x[max(r0, 0):r0 + size, max(c0, 0):c0 + size].max(axis=(0, 1))
            x = y
        elif s.kind == "upsample":
            x = x.repeat(2, axis=0).repeat(2, axis=1)
        elif s.kind == "yolo":
            heads.append(x)
        outputs.append(x)
    return heads


def test_the_keras_network_computes_what_darknet_does(tiny):
    _, sections, weights, arrays = tiny
    model = build_darknet(sections)
    load_darknet_weights(model, weights)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 3, 3, 12), (None, 6, 6, 6)]
    assert model.get_layer("conv_0").padding == "valid" and model.get_layer("pad_0")  # darknet's padding
    pixels = np.random.default_rng(3).integers(0, 256, (12, 12, 3)).astype(np.float32)
    got = model(pixels[None], training=False)
    for keras_out, darknet_out in zip(got, darknet_forward(sections, arrays, pixels)):
        np.testing.assert_allclose(keras_out[0], darknet_out, rtol=1e-4, atol=1e-4)
    # Keras' own "same" padding for the stride-2 convolution would have given something else
    moved = keras.layers.Conv2D(4, 3, 2, padding="same", use_bias=False)
    moved.build((None, 12, 12, 3))
    moved.set_weights(model.get_layer("conv_0").get_weights())
    assert not np.allclose(moved(pixels[None] / 255), model.get_layer("conv_0")(model.get_layer("pad_0")(pixels[None] / 255)))


def test_the_built_network_saves_and_reloads(tiny, tmp_path):
    _, sections, weights, _ = tiny
    model = build_darknet(sections)
    load_darknet_weights(model, weights)
    model.save(tmp_path / "tiny.keras")
    reloaded = keras.saving.load_model(tmp_path / "tiny.keras", safe_mode=True)
    x = np.random.default_rng(0).uniform(0, 255, (2, 12, 12, 3)).astype(np.float32)
    for a, b in zip(model(x), reloaded(x)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_a_short_or_long_file_is_refused_with_both_sizes(tiny, tmp_path):
    cfg, sections, weights, _ = tiny
    data = weights.read_bytes()
    short, long = tmp_path / "short.weights", tmp_path / "long.weights"
    short.write_bytes(data[:-8])
    long.write_bytes(data + b"\0\0\0\0")
    expected = len(data)
    with pytest.raises(BackboneError, match=rf"darknet weights {short} do not fit {cfg}: its 5 convolutions need "
                                            rf"{expected} bytes .* the file has {expected - 8}; the file ends inside "
                                            r"convolution 5 of 5 \(layer 12, 6 filters 1x1 on 4 channels\)"):
        load_darknet_weights(build_darknet(sections), short, cfg)
    with pytest.raises(BackboneError, match=rf"need {expected} bytes .* the file has {expected + 4}$"):
        read_darknet_weights(long, conv_specs(sections), str(cfg))


def test_an_old_header_has_a_32_bit_seen_count(tiny, tmp_path):
    _, sections, _, _ = tiny
    old = tmp_path / "old.weights"
    arrays = write_weights(old, conv_specs(sections), version=(0, 1, 0), seen=12)
    header, convs = read_darknet_weights(old, conv_specs(sections))
    assert header["seen"] == 12 and old.stat().st_size == 16 + 4 * sum(s.count for s in conv_specs(sections))
    np.testing.assert_array_equal(convs[-1].kernel, arrays[-1]["kernel"])


def test_other_classes_keep_box_channels_and_get_fresh_class_channels(tiny):
    _, sections, weights, arrays = tiny
    model = build_darknet(sections, num_classes=3)
    assert [h.num_classes for h in model.yolo_heads] == [3, 3]
    fresh = model.get_layer("conv_6").get_weights()
    load_darknet_weights(model, weights)
    kernel, bias = model.get_layer("conv_6").get_weights()
    assert kernel.shape == (1, 1, 6, 2 * (5 + 3))
    file_kernel, file_bias = arrays[2]["kernel"].transpose(2, 3, 1, 0), arrays[2]["bias"]
    for a in range(2):  # anchor a: 5 box and objectness channels from the file (6 a channel there), 3 fresh
        np.testing.assert_array_equal(kernel[..., a * 8:a * 8 + 5], file_kernel[..., a * 6:a * 6 + 5])
        np.testing.assert_array_equal(bias[a * 8:a * 8 + 5], file_bias[a * 6:a * 6 + 5])
        np.testing.assert_array_equal(kernel[..., a * 8 + 5:a * 8 + 8], fresh[0][..., a * 8 + 5:a * 8 + 8])
    np.testing.assert_array_equal(model.get_layer("conv_0").get_weights()[0], arrays[0]["kernel"].transpose(2, 3, 1, 0))


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(BackboneError, match=r"darknet weights file not found: .*nope.weights; .*releases.*"
                                            r"\.\./shared/data/weights/yolov4-tiny-coco/"):
        build_yolov4_tiny(weights=tmp_path / "nope.weights")
    with pytest.raises(BackboneError, match=r"darknet cfg file not found: .*nope.cfg"):
        parse_darknet_cfg(tmp_path / "nope.cfg")


# --- decoding ----------------------------------------------------------------------------------------

def test_decoding_follows_the_yolov4_formula_and_maps_back_to_the_image():
    head = YoloHead(((20.0, 10.0),), num_classes=2, scale_x_y=1.2)
    raw = np.full((1, 2, 2, 7), -10.0, np.float32)  # grid 2x2 on a 64x64 input; nothing anywhere...
    raw[0, 1, 0] = [0.0, np.log(3.0), np.log(2.0), 0.0, 5.0, 4.0, -3.0]  # ...but a box in row 1, column 0
    boxes, objectness, classes = decode_yolo([raw], [head], (64, 64))
    s = 1.2
    cx = (0.5 * s - (s - 1) / 2 + 0) / 2 * 64
    cy = (0.75 * s - (s - 1) / 2 + 1) / 2 * 64
    np.testing.assert_allclose(boxes[0, 2], [cy - 5, cx - 20, cy + 5, cx + 20], rtol=1e-5)  # w = 20 e^ln2
    np.testing.assert_allclose([objectness[0, 2], classes[0, 2, 0]], 1 / (1 + np.exp([-5.0, -4.0])), rtol=1e-5)
    # the canvas was the image scaled by (0.5, 0.25) and shifted by (4, 0): back to image pixels
    found, scores, ids, valid = detect_yolo([raw], [head], (64, 64), scale=[0.5, 0.25], offset=[4.0, 0.0],
                                            image_hw=[200, 400])
    assert int(valid[0]) == 1 and int(ids[0, 0]) == 0
    np.testing.assert_allclose(scores[0, 0], objectness[0, 2] * classes[0, 2, 0], rtol=1e-5)
    assert (cx - 20) / 0.25 < 0  # the box starts left of the image: clipped to it
    np.testing.assert_allclose(found[0, 0], [(cy - 5 - 4) / 0.5, 0.0, (cy + 5 - 4) / 0.5, (cx + 20) / 0.25], rtol=1e-5)
    assert int(detect_yolo([raw], [head], (64, 64), score_threshold=0.999)[3][0]) == 0


# --- YOLOv4-tiny on COCO -------------------------------------------------------------------------------

# darknet's own yolov4-tiny results on dog.jpg (left, top, width, height, score), as `darknet detector
# test` prints them (reported by a third-party darknet-based app); drawn on the photo, they sit on the
# objects (the bicycle's box is loose on the left and bottom, as darknet's is).
DARKNET_DOG = {"dog": (137, 205, 181, 332, 0.84), "truck": (463, 79, 242, 91, 0.79), "car": (473, 81, 224, 92, 0.45),
               "bicycle": (70, 100, 507, 379, 0.60)}
# Boxes drawn by eye around the objects (yxyx), checked by drawing them on the photos.
DOG_OBJECTS = {"dog": (220, 133, 536, 310), "truck": (82, 464, 170, 690), "car": (82, 464, 170, 690),
               "bicycle": (135, 125, 420, 567)}
PERSON_OBJECTS = {"person": (96, 193, 376, 271), "dog": (263, 65, 346, 199), "horse": (138, 404, 338, 601)}


def iou(a, b):
    h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return h * w / (area(a) + area(b) - h * w)


@pytest.fixture(scope="module")
def coco():
    model = build_yolov4_tiny(weights=shared_data(COCO + "yolov4-tiny.weights"))
    return model, read_class_names(shared_data(COCO + "coco.names"))


def found(coco, photo, **kwargs):
    model, names = coco
    pixels = np.asarray(Image.open(shared_data(f"style/{photo}")).convert("RGB"))
    result = detect_image(model, pixels, **kwargs)
    return [(names[c], float(s), tuple(map(float, b))) for b, s, c in zip(result["boxes"], result["scores"],
                                                                          result["classes"])]


def test_yolov4_tiny_is_darknets_size(coco):
    model, names = coco
    assert len(names) == 80 and names[16] == "dog"
    weights_floats = (shared_data(COCO + "yolov4-tiny.weights").stat().st_size - 20) // 4
    assert model.count_params() == weights_floats == 6_062_814
    assert [tuple(o.shape) for o in model.outputs] == [(None, 13, 13, 255), (None, 26, 26, 255)]
    assert [h.anchors for h in model.yolo_heads] == [((81, 82), (135, 169), (344, 319)), ((23, 27), (37, 58), (81, 82))]


def test_dog_bicycle_and_truck_where_darknet_finds_them(coco):
    detections = found(coco, "dog.jpg")
    labels = [name for name, _, _ in detections]
    assert {"dog", "bicycle"} <= set(labels) and {"truck", "car"} & set(labels), detections
    for name, score, box in detections:
        assert name in DARKNET_DOG, detections
        left, top, width, height, darknet_score = DARKNET_DOG[name]
        assert score == pytest.approx(darknet_score, abs=0.02), (name, score)
        assert iou(box, (top, left, top + height, left + width)) > 0.95, (name, box)
        assert iou(box, DOG_OBJECTS[name]) > 0.6, (name, box)
    # the suite's letterbox (aspect kept) maps its boxes back to the photo too
    letterboxed = {name: box for name, _, box in found(coco, "dog.jpg", letterbox=True)}
    assert iou(letterboxed["dog"], DOG_OBJECTS["dog"]) > 0.6


def test_person_horse_and_dog(coco):
    detections = found(coco, "person.jpg")
    assert sorted(name for name, _, _ in detections) == ["dog", "horse", "person"], detections
    for name, score, box in detections:
        assert score > 0.7 and iou(box, PERSON_OBJECTS[name]) > 0.6, (name, score, box)


def test_fine_tuning_on_other_classes_starts_from_coco(coco):
    model, _ = coco
    tuned = build_yolov4_tiny(num_classes=3, weights=shared_data(COCO + "yolov4-tiny.weights"))
    assert [tuple(o.shape) for o in tuned.outputs] == [(None, 13, 13, 24), (None, 26, 26, 24)]
    np.testing.assert_array_equal(tuned.get_layer("conv_35").get_weights()[0], model.get_layer("conv_35").get_weights()[0])
    for conv in ("conv_29", "conv_36"):
        new, old = tuned.get_layer(conv).get_weights()[0], model.get_layer(conv).get_weights()[0]
        np.testing.assert_array_equal(new[..., 8:13], old[..., 85:90])  # anchor 1's box and objectness
        assert not np.allclose(new[..., 13:16], old[..., 90:93])  # its class channels are new
