"""Binary PGM (P5, the format of the AT&T and many face sets) read in graph ops, since TensorFlow has no
PGM decoder: training and the exported models decode the same bytes the same way (data.images.decode).

The header is "P5", width, height and maxval separated by whitespace (comments "#... newline" allowed),
then one whitespace byte and height x width samples: one byte each for maxval < 256, else two, big-endian.
Samples are scaled from 0..maxval to 0..255.
"""
import tensorflow as tf

_GAP = r"(?:\s|#[^\n]*\n)+"
_HEADER = rf"P5{_GAP}(\d+){_GAP}(\d+){_GAP}(\d+)\s"
_HEAD = 512  # header bytes read: room for comments


def pgm_headers(images):
    """(height, width, maxval, header_length) int64 per element of a 1-D string tensor; zeros where
    an element does not start with a readable P5 header."""
    head = tf.strings.substr(images, 0, _HEAD)  # shorter strings give all they have
    rest = tf.strings.regex_replace(head, "^" + _HEADER, "", replace_global=False)
    length = tf.cast(tf.strings.length(head) - tf.strings.length(rest), tf.int64)
    header = tf.strings.substr(head, tf.zeros_like(length, tf.int32), tf.cast(length, tf.int32))
    fields = tf.strings.regex_replace(header, f"^{_HEADER}$", r"\1 \2 \3")
    numbers = tf.strings.to_number(tf.strings.split(tf.where(length > 0, fields, "0 0 0"), " ").to_tensor("0"), tf.int64)
    numbers = tf.reshape(numbers, [-1, 3])
    return numbers[:, 1], numbers[:, 0], numbers[:, 2], length


def pgm_complete(images):
    """Bool per element: a readable P5 header with 0 < maxval < 65536 and all its samples present."""
    height, width, maxval, length = pgm_headers(images)
    sample_bytes = tf.where(maxval > 255, tf.constant(2, tf.int64), 1)
    needed = length + height * width * sample_bytes
    return (length > 0) & (maxval > 0) & (maxval < 65536) & (height > 0) & (width > 0) & (
        tf.cast(tf.strings.length(images), tf.int64) >= needed)


def decode_pgm(encoded):
    """One binary PGM's bytes -> uint8 (height, width, 1), samples scaled to 0..255 (check it first with
    pgm_complete: this assumes a complete file)."""
    height, width, maxval, length = (v[0] for v in pgm_headers(tf.reshape(encoded, [1])))
    count = height * width
    wide = maxval > 255
    data = tf.strings.substr(encoded, tf.cast(length, tf.int32), tf.cast(count * tf.where(wide, tf.constant(2, tf.int64), 1), tf.int32))

    def samples():
        raw = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int64)
        return tf.cond(wide, lambda: raw[0::2] * 256 + raw[1::2], lambda: raw)

    scaled = tf.round(tf.cast(samples(), tf.float32) * (255.0 / tf.cast(maxval, tf.float32)))
    image = tf.cast(tf.clip_by_value(scaled, 0, 255), tf.uint8)
    return tf.reshape(image, tf.stack([height, width, 1]))
