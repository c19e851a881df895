"""The serving-side decoder: checked batches of encoded images, refused by their headers and ends
before anything is decoded."""
import functools
import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.images.decode import MAX_PIXELS, decode_image_batch, ends_complete, header_sizes, is_encoded_image
from tests.conftest import ROOT


def encode(array, fmt, **kwargs):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


RGB = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)


# Tiny hand-made files (a few hundred bytes) whose headers claim a huge image.
def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width=20000, height=20000):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + _png_chunk(b"IEND", b""))


def huge_jpeg(width=20000, height=20000):
    """A real 8x8 JPEG whose frame header (SOF0) is patched to claim width x height."""
    data = bytearray(encode(RGB[:8, :8], "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def huge_gif(width=20000, height=20000):
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
            + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00;")


def huge_bmp(width=20000, height=-20000):  # a negative height: rows stored top-down
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + dib + b"\0" * 64


def _riff(chunk, data):
    body = b"WEBP" + chunk + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def huge_webp(kind, width=16384, height=16384):
    if kind == "VP8X":
        return _riff(b"VP8X", b"\0\0\0\0" + struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3])
    if kind == "VP8L":
        return _riff(b"VP8L", b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14) + b"\0" * 16)
    frame = b"\x50\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width % 2 ** 14, height % 2 ** 14)
    return _riff(b"VP8 ", frame + b"\0" * 16)


HUGE = {"png": huge_png(), "jpeg": huge_jpeg(), "gif": huge_gif(), "bmp": huge_bmp(),
        "webp_vp8x": huge_webp("VP8X"), "webp_vp8l": huge_webp("VP8L"), "webp_vp8": huge_webp("VP8 ", 16383, 16383)}


@functools.lru_cache(maxsize=None)  # one trace per setting: tracing the checks takes seconds
def _serve(max_pixels=None, size=(4, 4)):
    return tf.function(lambda x: decode_image_batch(x, size, 3, max_pixels),
                       input_signature=[tf.TensorSpec(None, tf.string)])  # shape unknown at trace time


def _error(serve, batch):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve(tf.constant(batch))
    return " ".join(str(error.value).split())


def test_decodes_and_resizes_mixed_formats():
    rgb = np.full((10, 12, 3), 200, np.uint8)
    batch = tf.constant([encode(rgb, "PNG"), encode(rgb, "JPEG"), encode(rgb[..., 0], "BMP")])
    assert is_encoded_image(batch).numpy().all()
    out = decode_image_batch(batch, (5, 6), 1)
    assert out.shape == (3, 5, 6, 1) and out.dtype == tf.uint8
    np.testing.assert_allclose(out.numpy(), 200, atol=2)


@pytest.mark.parametrize("value, message", [
    (tf.constant([], tf.string), "`images` is empty"),
    (tf.constant([[b"x"]]), "`images` must be a 1-D batch"),
    (tf.constant([b"GIF89a-not-really", b"plain text"]), "not a JPEG/PNG/GIF/BMP/WebP/PGM image, at indices:] [1]"),
])
def test_bad_batches_name_the_input(value, message):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _serve()(value)
    assert message in " ".join(str(error.value).split())


def test_header_sizes_are_the_ones_the_files_claim():
    files = [encode(RGB, "PNG"), encode(RGB, "GIF"), encode(RGB, "BMP"), encode(RGB, "WEBP"),
             encode(RGB, "WEBP", lossless=True), huge_bmp(30, -20), huge_webp("VP8X", 300, 200)]
    height, width, readable = header_sizes(tf.constant(files))
    assert readable.numpy().all()
    assert height.numpy().tolist() == [10] * 5 + [20, 200] and width.numpy().tolist() == [12] * 5 + [30, 300]
    assert tf.image.extract_jpeg_shape(huge_jpeg(300, 200)).numpy().tolist() == [200, 300, 3]


@pytest.mark.parametrize("kind", sorted(HUGE))
def test_an_image_claiming_too_many_pixels_is_refused_by_name_and_index(kind):
    message = _error(_serve(), [encode(RGB, "PNG"), HUGE[kind]])
    claimed = 16383 ** 2 if kind == "webp_vp8" else 16384 ** 2 if kind.startswith("webp") else 20000 ** 2
    assert (f"`images` holds images whose headers claim more than {MAX_PIXELS} pixels (width x height), the serving "
            f"limit, at indices:] [1] [claiming pixels:] [{claimed}]") in message


def _animated_gif(sizes):
    frames = [Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)) for i, (h, w) in enumerate(sizes)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], disposal=1)
    return buf.getvalue()


def test_a_gif_canvas_is_its_largest_frame():
    """TensorFlow sizes a GIF by its largest frame, not its logical screen: a small screen cannot hide
    a huge frame."""
    gif = bytearray(_animated_gif([(10, 12), (10, 12), (10, 12)]))
    height, width, readable = header_sizes(tf.constant([bytes(gif)]))
    assert (height.numpy()[0], width.numpy()[0], readable.numpy()[0]) == (10, 12, True)
    frame = gif.index(b",", 13)  # the first image descriptor (after the screen and its colour table)
    gif[frame + 5:frame + 9] = struct.pack("<HH", 20000, 20000)
    height, width, readable = header_sizes(tf.constant([bytes(gif)]))
    assert (height.numpy()[0], width.numpy()[0]) == (20000, 20000)
    assert "at indices:] [0] [claiming pixels:] [400000000]" in _error(_serve(), [bytes(gif)])


def test_the_pixel_limit_is_an_argument():
    image = encode(RGB, "PNG")  # 12 x 10 = 120 pixels
    assert _serve(max_pixels=120)(tf.constant([image])).shape == (1, 4, 4, 3)
    assert "claim more than 119 pixels" in _error(_serve(max_pixels=119), [image])


def test_huge_claims_are_refused_before_decoding_in_little_memory():
    """A fresh process: its peak memory after the refused calls is what it was before them (decoding
    the 20000 x 20000 PNG alone would take 1.2 GB)."""
    script = textwrap.dedent(f"""
        import json, resource, time
        import tensorflow as tf
        from data.images.decode import decode_image_batch
        from tests.data.images.test_decode import HUGE, RGB, encode
        serve = tf.function(lambda x: decode_image_batch(x, (4, 4), 3),
                            input_signature=[tf.TensorSpec([None], tf.string)])
        serve(tf.constant([encode(RGB, "PNG")]))
        before, start, refused = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.time(), []
        for kind, data in HUGE.items():
            try:
                serve(tf.constant([data]))
            except tf.errors.InvalidArgumentError as e:
                refused.append(kind if "claim more than" in str(e) else str(e)[-200:])
        print(json.dumps({{"grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
                          "seconds": time.time() - start, "refused": refused}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["refused"] == list(HUGE)
    assert result["grew_mb"] < 100 and result["seconds"] < 20, result


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_a_truncated_file_is_refused_by_name_and_index(fmt):
    data = encode(RGB, fmt)
    batch = [data, data[:len(data) // 2], data[:-2 if fmt == "GIF" else -1], data[:30]]
    message = _error(_serve(), batch)
    assert ("`images` holds truncated or corrupt images (an unreadable header, a JPEG without its end marker "
            "FF D9, a PNG without its IEND chunk or a GIF cut inside a block), at indices:] [1 2 3]") in message
    whole = header_sizes(tf.constant(batch))[2] if fmt == "GIF" else ends_complete(tf.constant(batch))
    assert whole.numpy().tolist() == [True, False, False, False]


def test_an_eight_bit_bmp_with_a_colour_palette_is_refused_and_a_grey_one_decodes():
    """TensorFlow returns an 8-bit BMP's palette indices as grey: red and blue would come out nearly black.
    A grey BMP (its palette the grey ramp, as Pillow and Paint write them) decodes right."""
    colours = np.zeros((4, 4, 3), np.uint8)
    colours[:2] = [255, 0, 0]
    colours[2:] = [0, 0, 255]
    buf = io.BytesIO()
    Image.fromarray(colours).convert("P", palette=Image.ADAPTIVE, colors=2).save(buf, "BMP")
    grey = encode(np.array([[0, 100], [200, 255]], np.uint8), "BMP")
    message = _error(_serve(), [grey, buf.getvalue(), encode(colours, "BMP")])
    assert ("`images` holds 8-bit BMPs with a colour palette, which the decoder turns into grey levels "
            "(convert them to PNG), at indices:] [1]") in message
    assert _serve(size=(2, 2))(tf.constant([grey])).numpy()[0, :, :, 0].tolist() == [[0, 100], [200, 255]]


def test_unreadable_headers_are_refused_as_corrupt():
    png = encode(RGB, "PNG")
    no_ihdr = png[:12] + b"XXXX" + png[16:]
    unknown_webp = _riff(b"VP8Z", b"\0" * 20)
    zero_side = huge_png(0, 10)
    message = _error(_serve(), [png, no_ihdr, unknown_webp, zero_side, b"BM\0\0"])
    assert "truncated or corrupt images" in message and "at indices:] [1 2 3 4]" in message


def test_a_gif_without_its_trailer_is_decoded_as_tensorflow_does():
    gif = encode(RGB, "GIF")
    assert gif.endswith(b";")
    np.testing.assert_array_equal(_serve(size=(10, 12))(tf.constant([gif[:-1]])).numpy(),
                                  _serve(size=(10, 12))(tf.constant([gif])).numpy())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_zero_padding_after_the_end_is_allowed(fmt):
    data = encode(RGB, fmt)
    out = _serve(size=(10, 12))(tf.constant([data + b"\0" * 1000]))
    np.testing.assert_array_equal(out.numpy()[0], _serve(size=(10, 12))(tf.constant([data])).numpy()[0])


def test_damage_inside_a_complete_file_still_gives_tensorflows_message():
    """The documented limit: a PNG with intact header and end but corrupt data is refused by the decoder
    itself, whose error does not name `images`."""
    png = bytearray(encode(RGB, "PNG"))
    idat = png.index(b"IDAT")
    png[idat + 10:idat + 30] = b"\xff" * 20
    message = _error(_serve(), [bytes(png)])
    assert "`images`" not in message
