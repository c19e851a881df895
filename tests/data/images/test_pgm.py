"""Binary PGM read in graph ops: the same pixels as Pillow, 16-bit and comment headers, truncated
files refused by the serving checks, and PGM files read by the shared file reader."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.images.decode import decode_image_batch, header_sizes, is_encoded_image
from data.images.files import inspect_image, read_image_file
from data.images.pgm import decode_pgm, pgm_complete, pgm_headers

GREY = np.random.default_rng(0).integers(0, 256, (7, 5), dtype=np.uint8)


def pgm_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PPM")  # Pillow writes a mode-L image as binary P5
    return buf.getvalue()


def test_decode_matches_pillow():
    data = pgm_bytes(GREY)
    assert data.startswith(b"P5")
    decoded = decode_pgm(tf.constant(data)).numpy()
    assert decoded.shape == (7, 5, 1)
    np.testing.assert_array_equal(decoded[..., 0], GREY)


def test_header_with_comment_and_small_maxval_is_scaled():
    data = b"P5\n# made by hand\n3 2\n15\n" + bytes([0, 15, 5, 10, 1, 15])
    height, width, maxval, length = (t.numpy()[0] for t in pgm_headers(tf.constant([data])))
    assert (height, width, maxval) == (2, 3, 15) and length == len(data) - 6
    expected = np.round(np.array([[0, 15, 5], [10, 1, 15]]) * 255 / 15)
    np.testing.assert_array_equal(decode_pgm(tf.constant(data)).numpy()[..., 0], expected)


def test_sixteen_bit_samples_are_big_endian_and_scaled():
    samples = np.array([[0, 65535], [256, 32768]], ">u2")
    data = b"P5 2 2 65535\n" + samples.tobytes()
    expected = np.round(samples.astype(np.float64) * 255 / 65535)
    np.testing.assert_array_equal(decode_pgm(tf.constant(data)).numpy()[..., 0], expected)


def test_truncated_or_broken_pgm_is_not_complete():
    data = pgm_bytes(GREY)
    complete = pgm_complete(tf.constant([data, data[:-1], b"P5 5 7\n", b"P5 0 7 255\n", b"P6 5 7 255\n" + bytes(105)]))
    assert complete.numpy().tolist() == [True, False, False, False, False]


def test_serving_decoder_reads_and_refuses_pgm():
    data = pgm_bytes(GREY)
    images = tf.constant([data])
    assert is_encoded_image(images).numpy().tolist() == [True]
    height, width, readable = (t.numpy().tolist() for t in header_sizes(images))
    assert (height, width, readable) == ([7], [5], [True])
    batch = decode_image_batch(images, (7, 5), 3).numpy()
    np.testing.assert_array_equal(batch[0], np.repeat(GREY[..., None], 3, axis=-1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncated or corrupt images"):
        decode_image_batch(tf.constant([data, data[:-3]]), (7, 5), 3)


def test_file_reader_takes_pgm(tmp_path):
    path = tmp_path / "face.pgm"
    path.write_bytes(pgm_bytes(GREY))
    assert inspect_image(path) == ("L", None)
    np.testing.assert_array_equal(read_image_file(path, 1).numpy()[..., 0], GREY)
    path.write_bytes(pgm_bytes(GREY)[:-2])
    mode, reason = inspect_image(path)
    assert mode is None and reason
