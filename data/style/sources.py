"""Where style-transfer images come from: the embedded paintings and photos (data/embedded/style, public
domain) by name, any image file, or a folder of photos searched recursively.

Photos are resized so that their short side is `short_side` (the training crops are cut from them), which at
the default 384 px is about 0.6 MB per photo: held in memory when they fit, else read from their files again
each epoch (data.style.pipeline).
"""
from pathlib import Path

import numpy as np
import tensorflow as tf

from data.embedded import embedded_file
from data.errors import DataError
from data.images.files import FolderScan, check_scan, image_paths, inspect_image, read_image_file, resize_uint8

EMBEDDED_STYLES = ("starry_night", "scream")  # Van Gogh, Munch
EMBEDDED_PHOTOS = ("dog", "horses", "person")
EMBEDDED = "embedded"


def embedded_image(name):
    return embedded_file("style") / f"{name}.jpg"


def image_path(name_or_path, what):
    """An embedded picture's name (starry_night, scream, dog, horses, person) or an image file -> its path."""
    text = str(name_or_path)
    if text in EMBEDDED_STYLES + EMBEDDED_PHOTOS:
        return embedded_image(text)
    path = Path(text)
    if not path.is_file():
        raise DataError(f"{what} image not found: {text} (give an image file, or one of the embedded pictures: "
                        f"{', '.join(EMBEDDED_STYLES + EMBEDDED_PHOTOS)})")
    return path


def read_picture(name_or_path, what, long_side=None):
    """uint8 RGB [h, w, 3] of an embedded picture or an image file, shrunk to `long_side` if larger."""
    image = read_image_file(image_path(name_or_path, what), 3)
    if long_side and max(image.shape[:2]) > long_side:
        h, w = image.shape[:2]
        image = resize_uint8(image, (max(1, round(h * long_side / max(h, w))), max(1, round(w * long_side / max(h, w)))))
    return image.numpy()


def picture_paths(source, embedded_names, what):
    """Image files of `source`: "embedded" (those names), a folder (searched recursively) or one file."""
    if source == EMBEDDED:
        return [embedded_image(n) for n in embedded_names]
    path = Path(source)
    if path.is_dir():
        try:
            return image_paths([path])
        except DataError:  # the folder holds no image files
            raise DataError(f"{what} folder {path} holds no JPEG/PNG/GIF/BMP/WebP/PGM files") from None
    if path.is_file():
        return [path]
    raise DataError(f"{what} not found: {source} (give a folder of images, an image file, or 'embedded')")


def readable_pictures(paths, skip_bad, what):
    """The paths of `paths` that decode as the exported models decode. A broken file stops with its name, or
    is skipped (and counted in a warning) with `skip_bad`, as every image loader of the suite does (check_scan)."""
    scan = FolderScan([], [], [], [])
    for path in paths:
        _, reason = inspect_image(path)
        if reason is None:
            scan.files.append((path, 0))
        else:
            scan.bad.append((path, reason))
    if skip_bad and not scan.files:
        raise DataError(f"no readable {what} images in {', '.join(map(str, paths[:3]))}")
    check_scan(scan, skip_bad)  # the suite's policy for bad files: stop naming them, or skip them with a warning
    return [path for path, _ in scan.files]


def load_pictures(paths, short_side):
    """uint8 [h, w, 3] of each readable picture, as `held_picture` holds it."""
    return [held_picture(read_image_file(path, 3), short_side).numpy() for path in paths]


def held_picture(image, side):
    """uint8 [h, w, 3] -> the same with the short side `side` and the long side at most twice that (a panorama
    keeps its middle, so that crops are not all sky). TensorFlow ops only: photos held in memory and photos
    read from their files during training (a traced pipeline) go through this one function."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    scale = side / tf.cast(tf.minimum(h, w), tf.float64)
    size = [tf.maximum(side, tf.cast(tf.round(tf.cast(n, tf.float64) * scale), tf.int32)) for n in (h, w)]
    image = resize_uint8(image, tf.stack(size))
    top, left = (tf.maximum(0, (n - 2 * side) // 2) for n in size)
    return image[top:top + tf.minimum(size[0], 2 * side), left:left + tf.minimum(size[1], 2 * side)]


def stack_padded(images):
    """Images of different sizes -> (uint8 [n, H, W, 3] zero-padded bottom-right, int32 [n, 2] sizes)."""
    h = max(i.shape[0] for i in images)
    w = max(i.shape[1] for i in images)
    out = np.zeros((len(images), h, w, 3), np.uint8)
    for k, image in enumerate(images):
        out[k, :image.shape[0], :image.shape[1]] = image
    return out, np.array([i.shape[:2] for i in images], np.int32)
