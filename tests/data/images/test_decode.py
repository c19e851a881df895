"""The serving-side decoder: checked batches of encoded images."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.images.decode import decode_image_batch, is_encoded_image


def encode(array, fmt):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


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
    (tf.constant([b"GIF89a-not-really", b"plain text"]), "not a JPEG/PNG/GIF/BMP/WebP image, at indices:] [1]"),
])
def test_bad_batches_name_the_input(value, message):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve = tf.function(lambda x: decode_image_batch(x, (4, 4), 3), input_signature=[tf.TensorSpec(None, tf.string)])
        serve(value)  # shape unknown at trace time, as in the exported signature
    assert message in " ".join(str(error.value).split())
