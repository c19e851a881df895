"""Encoded image bytes -> a checked uint8 batch, inside a graph (exported serving signatures).

Shared by every app that serves images, so each endpoint rejects bad requests the same way:
an InvalidArgumentError that names the `images` input and the bad indices, never an internal node.

Before anything is decoded, each image's header is read in graph ops and the batch is refused when:
- an element is not a JPEG/PNG/GIF/BMP/WebP/binary PGM file (by its first bytes);
- a header cannot be read (too short, no PNG IHDR chunk, an unknown WebP chunk, a zero side), a
  JPEG does not end with its end marker FF D9, a PNG with its IEND chunk (zero bytes after them
  are allowed, up to about 4 KB), or a GIF's data end inside a block: the signs of a truncated
  upload ("truncated or corrupt images");
- an 8-bit BMP has a colour palette (TensorFlow's decoder would return its palette indices as grey);
- a header claims more than `max_pixels` (default MAX_PIXELS, 120 megapixels) width x height, since
  the decoders allocate the whole image before reading its data (a 700-byte JPEG claiming
  6000 x 6000 makes TensorFlow's decoder take 110 MB, and the allocation grows with the claim).
  The sizes are the ones the decoders use: the JPEG frame (tf.image.extract_jpeg_shape: libjpeg
  reads the markers, no pixel is decoded), PNG IHDR, the BMP header, the WebP VP8/VP8L/VP8X header, the PGM header (data.images.pgm: a PGM missing samples
  counts as truncated),
  and for a GIF the largest of its screen and every frame (TensorFlow's canvas), found by walking
  its blocks (one step per 255-byte sub-block: about 0.3 s per megabyte of GIF).
Each error is an InvalidArgumentError naming `images` and the indices of the bad elements.

    serve = tf.function(lambda x: decode_image_batch(x, (224, 224), 3, max_pixels=10_000_000),
                        input_signature=[tf.TensorSpec([None], tf.string)])
    serve(tf.constant([open("cat.jpg", "rb").read()]))        # (1, 224, 224, 3) uint8

What cannot be seen before decoding: damage in the middle of a file whose header and end are intact.
Corrupt PNG data, a truncated BMP or WebP, and a JPEG whose header libjpeg cannot read fail inside a
decoder with TensorFlow's own message (graph code cannot catch a decode op's error); corrupt JPEG
image data is decoded as libjpeg recovers it (a damaged picture, as browsers show it). A JPEG with data after its end marker other than
zero bytes (some cameras append a trailer) is refused as truncated. Only the canvas size is limited:
an animated GIF's frames each take memory in the decoder (at most what its compressed data expands to).
"""
import tensorflow as tf

from data.boxes.geometry import letterbox
from data.images.files import decode_image, resize_uint8, to_square
from data.images.pgm import pgm_complete, pgm_headers
from data.tensors import forget_shape

MAX_PIXELS = 120_000_000  # width x height a header may claim (the decoders allocate it all): a 108 MP phone photo passes

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")
_HEAD = 32  # header bytes read: enough for every size field below
_TAIL = 4096  # end bytes read to find a JPEG's or PNG's end marker behind any zero padding
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC


# The entry points below are marked do_not_convert: every function here builds its graph with TensorFlow's own
# control flow (tf.where, tf.cond, tf.while_loop, tf.map_fn), so AutoGraph has nothing to convert, and converting
# it cost ~2 s of each process's first trace.


def is_encoded_image(images):
    """Bool per element: starts like a JPEG, PNG, GIF, BMP, WebP or binary PGM file (what data.images.files reads)."""
    ok = _starts(images, b"P5")
    for magic in _MAGIC:
        ok = tf.logical_or(ok, _starts(images, magic))
    return tf.logical_or(ok, _is_webp(images))


def _bytes(images, at, size):
    """`images[at:at + size]`, shorter (or empty) past the end of a string: substr itself refuses a
    start position past the end."""
    start = tf.minimum(tf.cast(at, tf.int64), tf.cast(tf.strings.length(images), tf.int64))
    return tf.strings.substr(images, start, tf.fill(tf.shape(start), tf.constant(size, tf.int64)))


def _starts(images, magic, at=0):
    return tf.equal(_bytes(images, at, len(magic)), magic)


def _is_webp(images):
    return tf.logical_and(_starts(images, b"RIFF"), _starts(images, b"WEBP", 8))


def _head_at(images, at, size):
    """`images[at:at + size]` as a (n, size) int64 array, zero-padded past the end of a short string."""
    return tf.cast(tf.io.decode_raw(_bytes(images, at, size), tf.uint8, fixed_length=size), tf.int64)


def _number(head, start, count, big_endian=False):
    """Unsigned integer of `count` bytes at `start` of each (n, k) header row."""
    value = tf.zeros(tf.shape(head)[:1], tf.int64)
    order = range(start, start + count) if big_endian else reversed(range(start, start + count))
    for i in order:
        value = value * 256 + head[:, i]
    return value


def _signed32(value):
    return tf.where(value >= 2 ** 31, value - 2 ** 32, value)


def _jpeg_sizes(images, is_jpeg):
    """(height, width) of each JPEG's frame header, (0, 0) for the other elements: libjpeg reads the
    markers up to the first scan (extract_jpeg_shape decodes no pixel)."""
    def one(args):
        encoded, jpeg = args
        return tf.cond(jpeg, lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64),
                       lambda: tf.zeros([2], tf.int64))

    hw = tf.map_fn(one, (images, is_jpeg), fn_output_signature=tf.TensorSpec([2], tf.int64))
    return hw[:, 0], hw[:, 1]


def header_sizes(images):
    """(height, width, readable) per element, from the header of each PNG, BMP and WebP file and the
    block structure of each GIF (JPEGs: see _jpeg_sizes); readable is False where the header is too
    short or not understood, or a GIF's blocks are cut short or unknown."""
    head = _head_at(images, 0, _HEAD)
    length = tf.strings.length(images)
    zero = tf.zeros_like(length, tf.int64)
    png = tf.logical_and(_starts(images, b"\x89PNG"), _starts(images, b"IHDR", 12))
    bmp_w, bmp_h = tf.abs(_signed32(_number(head, 18, 4))), tf.abs(_signed32(_number(head, 22, 4)))  # h < 0: top-down
    chunk = _bytes(images, 12, 4)
    webp = _is_webp(images)
    vp8x = tf.logical_and(webp, tf.equal(chunk, b"VP8X"))
    vp8l = tf.logical_and(webp, tf.logical_and(tf.equal(chunk, b"VP8L"), tf.equal(head[:, 20], 0x2F)))
    vp8 = tf.logical_and(webp, tf.logical_and(tf.equal(chunk, b"VP8 "), _starts(images, b"\x9d\x01\x2a", 23)))
    lossless = _number(head, 21, 4)
    cases = [  # (is this format, height, width, bytes the fields need)
        (png, _number(head, 20, 4, True), _number(head, 16, 4, True), 24),
        (_starts(images, b"BM"), bmp_h, bmp_w, 26),
        (vp8x, _number(head, 27, 3) + 1, _number(head, 24, 3) + 1, 30),
        (vp8l, (lossless // 2 ** 14) % 2 ** 14 + 1, lossless % 2 ** 14 + 1, 25),
        (vp8, _number(head, 28, 2) % 2 ** 14, _number(head, 26, 2) % 2 ** 14, 30),
    ]
    height, width, readable = zero, zero, tf.zeros_like(length, tf.bool)
    for is_format, h, w, needed in cases:
        height, width = tf.where(is_format, h, height), tf.where(is_format, w, width)
        readable = tf.logical_or(readable, tf.logical_and(is_format, length >= needed))
    gif = _starts(images, b"GIF8")
    gif_h, gif_w, gif_ok = _gif_canvas(images, gif)
    height, width = tf.where(gif, gif_h, height), tf.where(gif, gif_w, width)
    readable = tf.where(gif, gif_ok, readable)
    pgm = _starts(images, b"P5")
    pgm_h, pgm_w, _, _ = pgm_headers(images)
    height, width = tf.where(pgm, pgm_h, height), tf.where(pgm, pgm_w, width)
    readable = tf.where(pgm, pgm_complete(images), readable)  # the header and every sample
    readable = tf.logical_and(readable, tf.logical_and(height > 0, width > 0))
    return height, width, readable


def _table_bytes(flags):
    """Bytes of the colour table a GIF screen or frame descriptor's flags announce."""
    return tf.where(flags >= 128, 3 * 2 ** (flags % 8 + 1), 0)


def _gif_canvas(images, is_gif):
    """(height, width, readable) of each GIF's canvas as TensorFlow's decoder sizes it: the largest
    extent of the logical screen and of every frame (giflib reads all frames, and TensorFlow's canvas
    grows to the largest one), found by walking the blocks up to the trailer (one sub-block of at most
    255 bytes a step); readable is False where the walk fails: no frame, or data that end inside a
    block or hold an unknown one (a truncated or corrupt GIF; giflib, too, accepts a missing trailer
    but not a missing block). Elements that are not GIFs are done at once."""
    length = tf.cast(tf.strings.length(images), tf.int64)
    head = _head_at(images, 0, 13)
    in_blocks = tf.zeros_like(is_gif)  # at a sub-block's length byte, else at a block's first byte

    def step(pos, in_blocks, done, ok, frames, height, width):
        b = _head_at(images, pos, 10)
        past = pos >= length
        image = tf.logical_and(~in_blocks, tf.equal(b[:, 0], 0x2C))  # frame: ',' + left, top, width, height, flags
        extension = tf.logical_and(~in_blocks, tf.equal(b[:, 0], 0x21))  # '!' + label, then sub-blocks
        trailer = tf.logical_and(~in_blocks, tf.equal(b[:, 0], 0x3B))
        active = tf.logical_and(~done, ~past)
        frame = tf.logical_and(active, image)
        frames = tf.logical_or(frames, frame)
        height = tf.where(frame, tf.maximum(height, _number(b, 3, 2) + _number(b, 7, 2)), height)
        width = tf.where(frame, tf.maximum(width, _number(b, 1, 2) + _number(b, 5, 2)), width)
        advance = tf.where(in_blocks, 1 + b[:, 0], tf.where(image, 11 + _table_bytes(b[:, 9]), 2))  # 11: + code size
        finished = tf.logical_and(~done, tf.logical_or(past, tf.logical_and(~in_blocks, ~(image | extension))))
        # the trailer, or (as giflib allows) the data ending right after a complete block
        ended = tf.logical_or(tf.logical_and(trailer, ~past), tf.logical_and(past, ~in_blocks))
        ok = tf.where(finished, tf.logical_and(ended, frames), ok)
        pos = tf.where(active, pos + advance, pos)
        in_blocks = tf.where(active, tf.where(in_blocks, b[:, 0] > 0, image | extension), in_blocks)
        return pos, in_blocks, tf.logical_or(done, finished), ok, frames, height, width

    no = tf.zeros_like(is_gif)
    start = (13 + _table_bytes(head[:, 10]), no, ~is_gif, no, no, _number(head, 8, 2), _number(head, 6, 2))
    _, _, _, ok, _, height, width = tf.while_loop(lambda pos, in_blocks, done, *_: tf.reduce_any(~done), step, start)
    return height, width, ok


def ends_complete(images):
    """Bool per element: False for a JPEG that does not end with its EOI marker (FF D9) or a PNG that
    does not end with its IEND chunk, zero padding after them allowed; True for other formats."""
    length = tf.strings.length(images)
    tail = _head_at(images, tf.maximum(length - _TAIL, 0), _TAIL)  # zero-padded, as trailing zeros are skipped
    nonzero = tf.cast(tail != 0, tf.int32)
    last = _TAIL - 1 - tf.argmax(tf.reverse(nonzero, [1]), axis=1, output_type=tf.int32)  # last non-zero byte
    any_byte = tf.reduce_any(tail != 0, axis=1)
    positions = tf.clip_by_value(last[:, None] + tf.range(-7, 1)[None, :], 0, _TAIL - 1)
    end = tf.gather(tail, positions, batch_dims=1)  # the 8 bytes up to the last non-zero one
    jpeg_ok = tf.logical_and(last >= 1, tf.reduce_all(tf.equal(end[:, 6:], [0xFF, 0xD9]), axis=1))
    png_ok = tf.logical_and(last >= 7, tf.reduce_all(tf.equal(end, list(_PNG_END)), axis=1))
    ok = tf.where(_starts(images, b"\xff\xd8\xff"), jpeg_ok, tf.where(_starts(images, b"\x89PNG"), png_ok, True))
    ok = tf.where(_starts(images, b"P5"), pgm_complete(images), ok)
    return tf.logical_and(ok, any_byte)


def bmp_colours_kept(images):
    """Bool per element: False for an 8-bit BMP whose colour table is not the grey ramp (entry i = grey i):
    TensorFlow's BMP decoder returns an 8-bit BMP's palette indices as grey levels, not its colours (a red and
    blue picture comes out black), which only a grey ramp makes right. True for every other element."""
    head = _head_at(images, 0, 54)
    eight_bit = tf.logical_and(_starts(images, b"BM"), tf.equal(_number(head, 28, 2), 8))
    used = _number(head, 46, 4)
    count = tf.where(tf.logical_and(used > 0, used <= 256), used, 256)
    table = tf.reshape(_head_at(images, 14 + _number(head, 14, 4), 1024), [-1, 256, 4])  # blue, green, red, 0
    index = tf.range(256, dtype=tf.int64)
    grey = tf.reduce_all(tf.equal(table[:, :, :3], index[None, :, None]), axis=2)
    grey = tf.logical_or(grey, index[None, :] >= count[:, None])
    return tf.logical_or(tf.logical_not(eight_bit), tf.reduce_all(grey, axis=1))


def _refuse(condition, message, indices, *data):
    return tf.debugging.Assert(tf.reduce_all(condition), [message, indices, *data], summarize=16)


def _checked(images, max_pixels=None, name="images"):
    """`images` after in-graph checks that it is a non-empty 1-D batch of encoded images whose headers
    can be read, whose ends are there (JPEG, PNG) and which claim at most `max_pixels` pixels each."""
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    images = forget_shape(images)
    checks = [
        tf.debugging.assert_rank(images, 1, message=f"`{name}` must be a 1-D batch of encoded JPEG/PNG strings"),
        tf.debugging.assert_greater(tf.size(images), 0, message=f"`{name}` is empty: send at least one encoded image"),
    ]
    with tf.control_dependencies(checks):
        images = tf.reshape(images, [-1])  # rank 1 from here on, also for a signature traced without a shape
        ok = is_encoded_image(images)
        checks.append(_refuse(ok, f"`{name}` holds bytes that are not a JPEG/PNG/GIF/BMP/WebP/PGM image, at indices:",
                              tf.where(~ok)[:, 0]))
    with tf.control_dependencies(checks):
        height, width, readable = header_sizes(images)
        is_jpeg = _starts(images, b"\xff\xd8\xff")
        whole = tf.logical_and(tf.logical_or(readable, is_jpeg), ends_complete(images))
        checks.append(_refuse(whole, f"`{name}` holds truncated or corrupt images (an unreadable header, a JPEG "
                              "without its end marker FF D9, a PNG without its IEND chunk or a GIF cut inside "
                              "a block), at indices:",
                              tf.where(~whole)[:, 0]))
    with tf.control_dependencies(checks):
        kept = bmp_colours_kept(images)
        checks.append(_refuse(kept, f"`{name}` holds 8-bit BMPs with a colour palette, which the decoder turns "
                              "into grey levels (convert them to PNG), at indices:", tf.where(~kept)[:, 0]))
    with tf.control_dependencies(checks):  # libjpeg reads a JPEG's header only once its end is known to be there
        jpeg_h, jpeg_w = _jpeg_sizes(images, is_jpeg)
        pixels = tf.where(is_jpeg, jpeg_h * jpeg_w, height * width)
        small = pixels <= max_pixels
        checks.append(_refuse(small, f"`{name}` holds images whose headers claim more than {max_pixels} pixels "
                              "(width x height), the serving limit, at indices:", tf.where(~small)[:, 0],
                              "claiming pixels:", tf.gather(pixels, tf.where(~small)[:, 0])))
    with tf.control_dependencies(checks):
        return tf.identity(images)


@tf.autograph.experimental.do_not_convert
def check_encoded_images(images, max_pixels=None, name="images"):
    """The serving checks of `images` (rank, headers, ends, pixel count), for training's file scans to
    refuse exactly what the exported models refuse; `name`: the input the errors name."""
    return _checked(images, max_pixels, name)


@tf.autograph.experimental.do_not_convert
def decode_image_batch(images, size, channels, max_pixels=None, name="images", square="stretch"):
    """Validate a 1-D string tensor of encoded images and decode + resize it to (n, h, w, channels) uint8;
    `max_pixels`: the most pixels an image's header may claim (None: MAX_PIXELS); `name`: the input the
    errors name; `square`: how an image becomes square before a square resize (data.images.files.to_square)."""
    return tf.map_fn(lambda b: resize_uint8(to_square(decode_image(b, channels), square), size),
                     _checked(images, max_pixels, name),
                     fn_output_signature=tf.TensorSpec([*size, channels], tf.uint8))


@tf.autograph.experimental.do_not_convert
def decode_letterbox_batch(images, size, max_pixels=None):
    """Checked encoded RGB images of any sizes -> letterboxed (n, size, size, 3) uint8 canvases,
    the (n, 2) image-to-canvas scales and the (n, 2) image heights and widths (data.boxes)."""
    def one(encoded):
        image = decode_image(encoded, 3)
        canvas, scale = letterbox(image, size)
        return canvas, scale, tf.shape(image)[:2]

    return tf.map_fn(one, _checked(images, max_pixels), fn_output_signature=(
        tf.TensorSpec([size, size, 3], tf.uint8), tf.TensorSpec([2], tf.float32), tf.TensorSpec([2], tf.int32)))
