"""Encoded image bytes -> a checked uint8 batch, inside a graph (exported serving signatures).

Shared by every app that serves images, so each endpoint rejects bad requests the same way:
an InvalidArgumentError that names the `images` input, never an internal node.
"""
import tensorflow as tf

from data.boxes.geometry import letterbox
from data.images.files import decode_image, resize_uint8

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def is_encoded_image(images):
    """Bool per element: starts like a JPEG, PNG, GIF, BMP or WebP file (what data.images.files reads)."""
    ok = tf.zeros(tf.shape(images), tf.bool)
    for magic in _MAGIC:
        ok = tf.logical_or(ok, tf.equal(tf.strings.substr(images, 0, len(magic)), magic))
    webp = tf.logical_and(tf.equal(tf.strings.substr(images, 0, 4), b"RIFF"), tf.equal(tf.strings.substr(images, 8, 4), b"WEBP"))
    return tf.logical_or(ok, webp)


def _checked(images):
    """`images` after in-graph checks that it is a non-empty 1-D batch of encoded images."""
    checks = [
        tf.debugging.assert_rank(images, 1, message="`images` must be a 1-D batch of encoded JPEG/PNG strings"),
        tf.debugging.assert_greater(tf.size(images), 0, message="`images` is empty: send at least one encoded image"),
    ]
    with tf.control_dependencies(checks):
        ok = is_encoded_image(images)
        checks.append(tf.debugging.Assert(
            tf.reduce_all(ok), ["`images` holds bytes that are not a JPEG/PNG/GIF/BMP/WebP image, at indices:", tf.where(~ok)[:, 0]]))
    with tf.control_dependencies(checks):
        return tf.identity(images)


def decode_image_batch(images, size, channels):
    """Validate a 1-D string tensor of encoded images and decode + resize it to (n, h, w, channels) uint8."""
    return tf.map_fn(lambda b: resize_uint8(decode_image(b, channels), size), _checked(images),
                     fn_output_signature=tf.TensorSpec([*size, channels], tf.uint8))


def decode_letterbox_batch(images, size):
    """Checked encoded RGB images of any sizes -> letterboxed (n, size, size, 3) uint8 canvases,
    the (n, 2) image-to-canvas scales and the (n, 2) image heights and widths (data.boxes)."""
    def one(encoded):
        image = decode_image(encoded, 3)
        canvas, scale = letterbox(image, size)
        return canvas, scale, tf.shape(image)[:2]

    return tf.map_fn(one, _checked(images), fn_output_signature=(
        tf.TensorSpec([size, size, 3], tf.uint8), tf.TensorSpec([2], tf.float32), tf.TensorSpec([2], tf.int32)))
