"""Encoded image bytes -> a checked uint8 batch, inside a graph (exported serving signatures).

Shared by every app that serves images, so each endpoint rejects bad requests the same way:
an InvalidArgumentError that names the `images` input, never an internal node.
"""
import tensorflow as tf

from data.image_files import decode_image, resize_uint8

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def is_encoded_image(images):
    """Bool per element: starts like a JPEG, PNG, GIF or BMP file."""
    ok = tf.zeros(tf.shape(images), tf.bool)
    for magic in _MAGIC:
        ok = tf.logical_or(ok, tf.equal(tf.strings.substr(images, 0, len(magic)), magic))
    return ok


def decode_image_batch(images, size, channels):
    """Validate a 1-D string tensor of encoded images and decode + resize it to (n, h, w, channels) uint8."""
    checks = [
        tf.debugging.assert_rank(images, 1, message="`images` must be a 1-D batch of encoded JPEG/PNG strings"),
        tf.debugging.assert_greater(tf.size(images), 0, message="`images` is empty: send at least one encoded image"),
    ]
    with tf.control_dependencies(checks):
        ok = is_encoded_image(images)
        checks.append(tf.debugging.Assert(
            tf.reduce_all(ok), ["`images` holds bytes that are not a JPEG/PNG/GIF/BMP image, at indices:", tf.where(~ok)[:, 0]]))
    with tf.control_dependencies(checks):
        images = tf.identity(images)
    return tf.map_fn(lambda b: resize_uint8(decode_image(b, channels), size), images,
                     fn_output_signature=tf.TensorSpec([*size, channels], tf.uint8))
