"""EXIF orientation of JPEG files, read and applied in the graph: phones store pixels as the sensor saw them
and a tag that says how to turn them upright, which TensorFlow's decoders ignore (a portrait photo comes out
lying on its side). Hand-written because nothing in TensorFlow reads EXIF and the exported models must do it
without Python; it reads only the one tag (0x0112 in the first image directory), as Pillow's exif_transpose does."""
import tensorflow as tf

_ENTRIES = 64  # image-directory entries looked at: cameras write 10-20 before their sub-directories
_ORIENTATION_TAG, _SHORT = 0x0112, 3


def _read(encoded, at, size):
    """`size` bytes of a scalar string from `at` as int64, zeros past its end (or at a negative `at`)."""
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    at = tf.clip_by_value(tf.cast(at, tf.int64), 0, length)
    raw = tf.io.decode_raw(tf.strings.substr(encoded, at, tf.constant(size, tf.int64)), tf.uint8, fixed_length=size)
    return tf.cast(raw, tf.int64)


def _tiff_start(encoded):
    """Offset of the TIFF header inside a JPEG's Exif segment (APP1 'Exif\\0\\0'), -1 where there is none.
    The Exif standard puts that segment first; JFIF writers put theirs (APP0) before it: both places are looked
    at, without a loop (a loop over every segment cost a serving graph a fifth of a JPEG's decoding time)."""
    head = _read(encoded, 0, 12)  # start marker, then a segment: 0xFF, marker, 2-byte length, 'Exif\0\0'?
    second = 4 + head[4] * 256 + head[5]  # where the segment after the first starts
    after = _read(encoded, second, 10)

    def exif_at(segment):
        return tf.logical_and(tf.reduce_all(tf.equal(segment[:2], [0xFF, 0xE1])),
                              tf.reduce_all(tf.equal(segment[4:10], list(b"Exif\0\0"))))

    is_jpeg = tf.reduce_all(tf.equal(head[:2], [0xFF, 0xD8]))
    first_is_app0 = tf.reduce_all(tf.equal(head[2:4], [0xFF, 0xE0]))
    found = tf.where(exif_at(head[2:]), tf.constant(12, tf.int64),
                     tf.where(tf.logical_and(first_is_app0, exif_at(after)), second + 10, tf.constant(-1, tf.int64)))
    return tf.where(is_jpeg, found, tf.constant(-1, tf.int64))


def _unsigned(data, little_endian):
    """Unsigned integers from the last axis of `data` (bytes as int64), in the file's byte order."""
    weights = 256 ** tf.range(tf.shape(data)[-1], dtype=tf.int64)
    weights = tf.where(little_endian, weights, tf.reverse(weights, [0]))
    return tf.reduce_sum(data * weights, axis=-1)


# A function of its own: eagerly (a user's first files) its ~60 small ops cost ~30 ms one by one, traced ~0.2 ms.
@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def exif_orientation(encoded):
    """The EXIF orientation (1-8) of one encoded image; 1 (upright as stored) for other formats, and where
    there is no Exif segment, no orientation tag, or one that cannot be read."""
    tiff = _tiff_start(encoded)
    header = _read(encoded, tiff, 8)  # 'II*\0' (little-endian) or 'MM\0*', then the first directory's offset
    little = tf.equal(header[0], 0x49)
    readable = tf.logical_and(tiff >= 0, tf.logical_or(little, tf.equal(header[0], 0x4D)))
    directory = tiff + _unsigned(header[4:8], little)
    count = _unsigned(_read(encoded, directory, 2), little)
    entries = tf.reshape(_read(encoded, directory + 2, 12 * _ENTRIES), [_ENTRIES, 12])  # tag, type, count, value
    match = tf.logical_and(tf.equal(_unsigned(entries[:, 0:2], little), _ORIENTATION_TAG),
                           tf.equal(_unsigned(entries[:, 2:4], little), _SHORT))
    match = tf.logical_and(match, tf.range(_ENTRIES, dtype=tf.int64) < count)
    value = tf.reduce_max(tf.where(match, _unsigned(entries[:, 8:10], little), 0))  # a SHORT sits left in the field
    ok = tf.logical_and(readable, tf.logical_and(value >= 1, value <= 8))
    return tf.where(ok, value, tf.constant(1, tf.int64))


def apply_orientation(image, orientation):
    """`image` (H, W, C) turned upright for its EXIF `orientation`, as Pillow's ImageOps.exif_transpose does."""
    def rot(k):
        return lambda: tf.image.rot90(image, k)  # k quarter turns anticlockwise

    return tf.switch_case(tf.cast(orientation, tf.int32) - 1, [
        lambda: image, lambda: tf.image.flip_left_right(image), rot(2), lambda: tf.image.flip_up_down(image),
        lambda: tf.image.transpose(image), rot(3), lambda: tf.image.rot90(tf.image.transpose(image), 2), rot(1)])
