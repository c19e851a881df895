"""Image files on disk: class-folder scanning, a pre-flight check of every file, and decoding.

`image_dataset_from_directory` crashes mid-epoch on a truncated JPEG; here every file is opened
and fully decoded once before training, and bad ones are reported by path (or skipped by flag).
Files are decoded by TensorFlow's decoders only, the ones the exported models run: an image that
trains is an image the SavedModel accepts, with the same pixels (Pillow only explains failures).
"""
import dataclasses
import re
import warnings
from pathlib import Path

import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from data.errors import DataError
from data.user_files import user_files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".pgm")
# Pictures the exported models' decoders cannot read: named as bad files, never skipped unsaid. Any other
# extension (notes.txt, landmarks.pts, labels.json) is not a picture: left out, and counted.
OTHER_IMAGE_EXTENSIONS = (".tif", ".tiff", ".heic", ".heif", ".avif", ".jp2", ".jxl", ".ppm", ".pnm", ".pbm", ".ico",
                          ".dng", ".cr2", ".nef", ".arw", ".psd", ".exr")

_COLOUR_MODES = {"L": 1, "RGB": 3}


@dataclasses.dataclass
class FolderScan:
    """What a scan of a class-folder tree found."""

    class_names: list
    files: list  # [(path, label)] readable images
    bad: list  # [(path, reason)]
    converted: list  # [(path, mode)] images in another colour mode, converted on load
    other: list = dataclasses.field(default_factory=list)  # files that are not pictures (notes.txt), left out


def inspect_image(path):
    """Return (mode, None) for a readable image, or (None, reason) for a broken one."""
    path = Path(path)
    if path.stat().st_size == 0:
        return None, "empty file (0 bytes)"
    from data.images import decode  # here: that module imports this one

    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, decode.MAX_PIXELS
    try:
        # Pillow's decompression-bomb guard, at the serving limit (its own 89.5 MP would refuse a 100 MP photo
        # the export takes): above it Pillow warns (without the path), above twice that it raises; either way
        # the file is reported here by path.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                im.load()  # verify() does not decode pixels: a truncated JPEG fails only here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return None, f"too many pixels to decode safely ({e})"
    except (UnidentifiedImageError, SyntaxError) as e:
        return None, f"not an image ({e.__class__.__name__})"
    except (OSError, ValueError) as e:
        return None, f"corrupt image ({e})"
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    data = path.read_bytes()
    reason = _tensorflow_refuses(data) or _dark_16_bit_png(data)
    return (None, reason) if reason else (im.mode, None)


def _tensorflow_refuses(data):
    """Why the exported models' checks and decoders would refuse these bytes, or None: training
    accepts exactly the files serving accepts."""
    try:
        _checked_decode(data, 3)
    except tf.errors.InvalidArgumentError as e:
        return refused_because(e, data)
    return None


def _phone_trailer(data):
    """Whether a JPEG carries data after its image, as phones append a motion photo's video (Google's MP4 after
    the end marker, Samsung's MotionPhoto_Data and SEF trailer): the exports' end check sees no end marker."""
    return data[:3] == b"\xff\xd8\xff" and (data.rstrip(b"\0")[-2:] != b"\xff\xd9") and (
        b"MotionPhoto_Data" in data or data.rstrip(b"\0").endswith(b"SEFT") or
        any(data[i - 6:i - 4] == b"\xff\xd9" for i in _all(data, b"ftyp")))


def _all(data, needle):
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


def _dark_16_bit_png(data):
    """Why a 16-bit PNG would come out nearly black, or None. Decoding to 8 bits (as every model of the suite and
    its exports decode) keeps each value's high byte, so 12-bit camera or microscope data (values up to 4095)
    becomes 0..15. A PNG whose values reach 16384 (a quarter of the range, more than 14-bit data holds) is taken as
    full-range. Alpha does not count: an opaque 12-bit RGBA image has alpha 65535. Call it on checked bytes."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 26 or data[24] != 16:  # IHDR bit depth
        return None
    pixels = tf.io.decode_png(data, dtype=tf.uint16)
    if data[25] in (4, 6):  # IHDR colour type: grey + alpha, RGBA
        pixels = pixels[..., :-1]
    top = int(tf.reduce_max(pixels))
    if top >= 1 << 14:
        return None
    return (f"a 16-bit PNG whose values reach only {top} of 65535: decoded to 8 bits, as the exported models decode it, "
            f"it keeps {(top >> 8) + 1} grey level(s), nearly black; stretch its range into 8 bits first (e.g. "
            "ImageMagick: convert in.png -auto-level -depth 8 out.png)")


def refused_because(error, data=None):
    """A decoder's or check's error -> why the file is refused and what to do, in a line (no TensorFlow node names);
    `data`, the file's bytes, lets a phone's motion photo be named as such."""
    if data is not None and _phone_trailer(data):
        return ("refused by the decoders the exported models use (a JPEG with data after its image: a phone's motion "
                "photo, its video appended); save the still alone, e.g. exiftool -trailer:all= FILE, or turn the "
                "camera's motion photos off")
    reason = _refusal(error)
    advice = "downscale it" if "claim more than" in reason else "convert it to PNG or JPEG"
    return f"refused by the decoders the exported models use ({reason}); {advice}"


def _refusal(error):
    """The reason in a check's or decoder's error, eager or traced: the assertion's message, or the op's."""
    text = str(error)
    asserted = re.search(r"assertion failed: \[(.*?)\]|Summarized data: b'(.*?)'", text)
    if asserted:  # its message ends where the failing indices follow; the file is named by the caller
        return re.sub(r",? at indices:$", "", asserted.group(1) or asserted.group(2))[:160]
    text = re.sub(r"\[\[\{\{.*?\}\}\]\]|\{\{.*?\}\}|\[Op:\w+\]( name: \S*)?", "", text)  # node and op names
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("File ", "Detected at node", "Graph execution"))]
    return (lines[-1] if lines else "no reason given")[:160]


# Eagerly, each of the checks' ~100 small ops is dispatched on its own: ~70 ms a file. Traced once (a few
# seconds), a file takes ~1.5 ms. A process's first files go eagerly (one image, or a handful, should not
# wait for a trace); from then on one traced graph per channel count does it (a 10,000-image folder: seconds,
# not minutes).
_EAGER_FILES = 16
_eager_calls = 0
_traced = {}


def _checked_decode(data, channels):
    """Encoded bytes -> uint8 (h, w, channels) tensor after the serving checks (check_encoded_images)."""
    global _eager_calls
    from data.images.decode import check_encoded_images  # here: that module imports this one

    def checked(encoded):
        return decode_image(check_encoded_images(encoded[None])[0], channels)

    if _eager_calls < _EAGER_FILES:
        _eager_calls += 1
        return checked(tf.constant(data))
    if channels not in _traced:
        _traced[channels] = tf.function(checked, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    return _traced[channels](tf.constant(data))


def scan_class_folders(root):
    """Find `root/<class>/<image>` files (also in sub-folders of a class folder: cat/2019/b.png, as
    image_dataset_from_directory does), check each one, and report what is wrong by path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"data folder {root} has no class sub-folders (expected {root}/<class>/<image>.jpg)")
    files, bad, modes, other = [], [], {}, []
    for label, d in enumerate(class_dirs):
        paths = user_files(d)
        other += [p for p in paths if p.suffix.lower() not in IMAGE_EXTENSIONS + OTHER_IMAGE_EXTENSIONS]
        paths = [p for p in paths if p.suffix.lower() in IMAGE_EXTENSIONS + OTHER_IMAGE_EXTENSIONS]
        if not paths:
            raise DataError(f"class folder {d} holds no images")
        for p in paths:
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                bad.append((p, f"a {p.suffix[1:].upper()} picture, which the exported models' decoders cannot read "
                               "(JPEG, PNG, BMP, GIF, WebP, PGM); convert it to PNG or JPEG"))
                continue
            mode, reason = inspect_image(p)
            if reason:
                bad.append((p, reason))
            else:
                files.append((p, label))
                modes[p] = mode
    usual = max(set(modes.values()), key=list(modes.values()).count) if modes else "RGB"
    converted = [(p, m) for p, m in modes.items() if m != usual]
    return FolderScan([d.name for d in class_dirs], files, bad, converted, other)


def check_scan(scan, skip_bad):
    """Raise on bad files unless `skip_bad`; warn about skipped and colour-converted files."""
    if scan.bad and not skip_bad:
        listing = "; ".join(f"{p}: {why}" for p, why in scan.bad[:5])
        more = f" (and {len(scan.bad) - 5} more)" if len(scan.bad) > 5 else ""
        raise DataError(f"{len(scan.bad)} bad image file(s): {listing}{more}. Fix or remove them, or pass --data.skip_bad_files true")
    if scan.bad:
        warnings.warn(f"skipped {len(scan.bad)} bad image file(s), e.g. {scan.bad[0][0]}: {scan.bad[0][1]}", stacklevel=2)
    if scan.other:
        print(f"note: left out {len(scan.other)} file(s) that are not pictures, e.g. {scan.other[0]}")
    if scan.converted:
        p, m = scan.converted[0]
        warnings.warn(f"{len(scan.converted)} image(s) in another colour mode were converted, e.g. {p} ({m})", stacklevel=2)
    if not scan.files:
        raise DataError("no readable images found")


@tf.autograph.experimental.do_not_convert  # TensorFlow's own tf.cond: nothing for AutoGraph to convert
def decode_image(encoded, channels):
    """Encoded JPEG/PNG/GIF/BMP/WebP/binary PGM bytes -> uint8 HxWxC tensor (first frame of a GIF).

    Decoded as RGB first (the one channel count every decoder accepts: BMP and GIF refuse 1),
    then converted to grey when `channels` is 1; PGM (grey) by data.images.pgm, repeated to RGB.
    A JPEG is turned upright as its EXIF orientation says (phone photos), as photo viewers show it."""
    from data.images.exif import apply_orientation, exif_orientation
    from data.images.pgm import decode_pgm

    image = tf.cond(tf.strings.substr(encoded, 0, 2) == b"P5",
                    lambda: tf.image.grayscale_to_rgb(decode_pgm(encoded)),
                    lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8))
    image = apply_orientation(image, exif_orientation(encoded))
    if channels == 1:
        grey = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
        image = tf.cast(tf.clip_by_value(tf.round(grey), 0, 255), tf.uint8)
    return image


def resize_uint8(image, size):
    """Resize to `size` (h, w) the same way in training, prediction and the exported model."""
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def fit_within(hw, max_side):
    """int32 [2] (h, w) scaled so that the long side is at most `max_side`, aspect kept (each side at least 1);
    `hw` as it is when it already fits. Eager or in a graph: training's reading and the exports size alike."""
    hw = tf.convert_to_tensor(hw, tf.int32)
    scale = tf.minimum(tf.constant(1.0, tf.float64), float(max_side) / tf.cast(tf.reduce_max(hw), tf.float64))
    return tf.maximum(1, tf.cast(tf.round(tf.cast(hw, tf.float64) * scale), tf.int32))


SQUARE_MODES = ("stretch", "center", "top", "bottom", "pad")
CROP_MODES = ("center", "top", "bottom")  # the modes a square share (a tighter square) applies to


def to_square(image, mode):
    """An (h, w, c) image made square before a square resize: `stretch` leaves it (the resize stretches),
    `center`/`top`/`bottom` crop the largest square (horizontally centred; `bottom` keeps the lower part,
    e.g. a face without the hair of a loosely framed portrait), `pad` pads it with zeros around the centre.
    `mode` may also be (crop mode, share): a square of `share` x the shorter side, placed the same way (a
    tighter face)."""
    mode, share = (mode, 1.0) if isinstance(mode, str) else mode
    if share != 1.0 and mode not in CROP_MODES:
        raise ValueError(f"a square share ({share}) needs a crop mode (center, top, bottom), not {mode}")
    if mode == "stretch":
        return image
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w) if mode != "pad" else tf.maximum(h, w)
    if share != 1.0:
        side = tf.maximum(1, tf.cast(tf.round(tf.cast(side, tf.float32) * share), tf.int32))
    if mode == "pad":
        return tf.image.pad_to_bounding_box(image, (side - h) // 2, (side - w) // 2, side, side)
    top = {"center": (h - side) // 2, "top": 0, "bottom": h - side}[mode]
    return tf.image.crop_to_bounding_box(image, top, (w - side) // 2, side, side)


def load_image_file(path, size, channels, square="stretch"):
    """Read one checked image file to a uint8 (h, w, channels) array (`square`: see to_square)."""
    return resize_uint8(to_square(read_image_file(path, channels), square), size).numpy()


def read_image_file(path, channels=3):
    """One image file at its own size as a uint8 (h, w, channels) tensor, decoded as serving decodes it."""
    data = Path(path).read_bytes()
    try:
        image = _checked_decode(data, channels)
    except tf.errors.InvalidArgumentError as e:  # the reason is in the error: no second decode to find it
        raise DataError(f"{path}: {refused_because(e, data)}") from None
    refuse_dark_16_bit_png(path, data)
    return image


def refuse_dark_16_bit_png(path, data):
    """A DataError naming `path` if its bytes (already decoded once, so checked) are a 16-bit PNG of 12- or 14-bit data."""
    dark = _dark_16_bit_png(data)
    if dark:
        raise DataError(f"{path}: {dark}")


_NOTED_FOLDERS = set()


def image_paths(inputs):
    """Image files named by `inputs`: files as given, folders searched recursively for a person's images
    (not macOS's ._x.jpg shadows, nor what hidden folders such as .ipynb_checkpoints hold). Pictures in a
    format the exported models cannot decode (an iPhone's HEIC, TIFF) are left out and counted in a note."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = user_files(item)
            found = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
            other = [p for p in files if p.suffix.lower() in OTHER_IMAGE_EXTENSIONS]
            if other and (item.resolve(), len(other)) not in _NOTED_FOLDERS:  # once, however often a run walks it
                _NOTED_FOLDERS.add((item.resolve(), len(other)))
                kinds = ", ".join(sorted({p.suffix[1:].upper() for p in other}))
                print(f"note: left out {len(other)} picture(s) under {item} in a format the exported models cannot "
                      f"decode ({kinds}), e.g. {other[0]}: convert them to JPEG or PNG")
            if not found:
                raise DataError(f"folder {item} holds no JPEG/PNG/GIF/BMP/WebP/PGM files")
            paths.extend(found)
        elif item.is_file():
            paths.append(item)
        else:
            raise DataError(f"input not found: {item}")
    return paths


def picture_names(paths):
    """One distinct `<stem>.png` per input: a stem met again gets `-2`, `-3`... (a/x.jpg, b/x.jpg and
    a/x.png all keep their picture); the printed records say which picture is whose."""
    names, taken = [], set()
    for path in paths:
        name, n = f"{path.stem}.png", 1
        while name.lower() in taken:  # case-insensitive: X.jpg and x.jpg must not share a file on macOS/Windows
            n += 1
            name = f"{path.stem}-{n}.png"
        taken.add(name.lower())
        names.append(name)
    return names
