"""EXIF orientation: read from a JPEG's Exif segment in the graph and applied as Pillow's exif_transpose does."""
import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from data.images.exif import exif_orientation
from data.images.files import decode_image


def _blocks(height=24, width=40, seed=0):
    """An image of 8x8 flat blocks: JPEG keeps it nearly exact, and every turn of it is a different image."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (height // 8, width // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)


def _jpeg(pixels, exif=b""):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=98, exif=exif)
    return buf.getvalue()


def _pillow_exif(orientation):
    exif = Image.Exif()
    exif[0x010F] = "Phone"  # another tag before it, as cameras write
    exif[0x0112] = orientation
    return exif.tobytes()


def _big_endian_exif_first(jpeg, orientation):
    """`jpeg` with a big-endian ('MM') Exif segment right after its start marker, before its JFIF segment."""
    entries = [(0x010F, 2, 4, b"Cam\0"), (0x0112, 3, 1, struct.pack(">HH", orientation, 0))]
    ifd = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHI", t, k, n) + v for t, k, n, v in entries)
    tiff = b"MM\0\x2a" + struct.pack(">I", 8) + ifd + b"\0\0\0\0"
    body = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_turns_the_image_as_pillow_does(orientation):
    data = _jpeg(_blocks(), _pillow_exif(orientation))
    assert int(exif_orientation(tf.constant(data))) == orientation
    ours = decode_image(tf.constant(data), 3).numpy().astype(int)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")).astype(int)
    assert ours.shape == upright.shape == ((24, 40, 3) if orientation < 5 else (40, 24, 3))
    assert np.abs(ours - upright).mean() < 2  # the two JPEG decoders differ by a little, a wrong turn by ~80


def test_big_endian_exif_before_jfif_is_read():
    data = _big_endian_exif_first(_jpeg(_blocks()), 6)
    assert data[2:4] == b"\xff\xe1" and b"JFIF" in data[:80]
    assert int(exif_orientation(tf.constant(data))) == 6
    assert decode_image(tf.constant(data), 1).shape == (40, 24, 1)  # turned before the grey conversion too


@pytest.mark.parametrize("data", [
    b"", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00", b"\x89PNG\r\n\x1a\n", b"not an image",
    _jpeg(_blocks()),  # no Exif segment
    _jpeg(_blocks(), Image.Exif().tobytes()),  # an Exif segment without the tag
    _big_endian_exif_first(_jpeg(_blocks()), 9),  # not an orientation
    _big_endian_exif_first(_jpeg(_blocks()), 6)[:30],  # cut inside the directory
], ids=["empty", "start only", "cut segment", "png", "text", "no exif", "no tag", "value 9", "truncated"])
def test_anything_else_is_upright_as_stored(data):
    assert int(exif_orientation(tf.constant(data))) == 1


def test_a_traced_batch_turns_each_image_by_its_own_tag():
    from data.images.decode import decode_image_batch

    pixels = _blocks()
    batch = tf.constant([_jpeg(pixels, _pillow_exif(o)) for o in (6, 8)])
    out = tf.function(lambda b: decode_image_batch(b, (40, 24), 3), autograph=False)(batch).numpy().astype(int)
    stored = decode_image(tf.constant(_jpeg(pixels)), 3).numpy().astype(int)
    assert np.abs(out[0] - np.rot90(stored, -1)).max() <= 1  # 6: a quarter turn clockwise
    assert np.abs(out[1] - np.rot90(stored, 1)).max() <= 1  # 8: anticlockwise


def test_an_exported_decoder_turns_phone_photos(tmp_path):
    """The nested traced function saves with a SavedModel, as every app's export holds it."""
    module = tf.Module()
    module.sizes = tf.function(lambda images: tf.map_fn(lambda b: tf.shape(decode_image(b, 3)), images,
                                                        fn_output_signature=tf.int32),
                               input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    tf.saved_model.save(module, str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    photos = tf.constant([_jpeg(_blocks(), _pillow_exif(o)) for o in (1, 6)])
    assert loaded.sizes(photos).numpy().tolist() == [[24, 40, 3], [40, 24, 3]]
