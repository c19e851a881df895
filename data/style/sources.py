"""Where style-transfer images come from: the embedded paintings and photos (data/embedded/style, public
domain) by name, any image file, or a folder of photos searched recursively.

Photos are held in memory resized so that their short side is `short_side` (the training crops are cut
from them), which at the default 384 px is about 0.6 MB per photo.
"""
from pathlib import Path

import numpy as np

from data.embedded import embedded_file
from data.errors import DataError
from data.images.files import (IMAGE_EXTENSIONS, FolderScan, check_scan, image_paths, inspect_image, read_image_file,
                               resize_uint8)

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
        if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.rglob("*")):
            raise DataError(f"{what} folder {path} holds no JPEG/PNG/GIF/BMP/WebP/PGM files")
        return image_paths([path])
    if path.is_file():
        return [path]
    raise DataError(f"{what} not found: {source} (give a folder of images, an image file, or 'embedded')")


def load_pictures(paths, short_side, skip_bad, what):
    """(list of uint8 [h, w, 3] with short side `short_side` and the long side at most 2x that,
    centre-cropped; list of the paths kept). A broken file stops with its name, or is skipped (and
    counted in a warning) with `skip_bad`, as every image loader of the suite does (check_scan)."""
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
    kept = [path for path, _ in scan.files]
    return [_short_side(read_image_file(path, 3), short_side).numpy() for path in kept], kept


def _short_side(image, side):
    h, w = int(image.shape[0]), int(image.shape[1])
    scale = side / min(h, w)
    size = (max(side, round(h * scale)), max(side, round(w * scale)))
    image = resize_uint8(image, size)
    long_side = 2 * side  # a panorama: its middle, so that crops are not all sky
    top, left = max(0, (size[0] - long_side) // 2), max(0, (size[1] - long_side) // 2)
    return image[top:top + min(size[0], long_side), left:left + min(size[1], long_side)]


def stack_padded(images):
    """Images of different sizes -> (uint8 [n, H, W, 3] zero-padded bottom-right, int32 [n, 2] sizes)."""
    h = max(i.shape[0] for i in images)
    w = max(i.shape[1] for i in images)
    out = np.zeros((len(images), h, w, 3), np.uint8)
    for k, image in enumerate(images):
        out[k, :image.shape[0], :image.shape[1]] = image
    return out, np.array([i.shape[:2] for i in images], np.int32)
