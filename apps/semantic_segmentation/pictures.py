"""Masks people can look at: palette PNGs that keep class ids, colour overlays, and
image | truth | prediction sheets for evaluation."""
import numpy as np
from PIL import Image, ImageDraw

IGNORE_COLOUR = (255, 255, 255)


def palette(num_classes):
    """Pascal VOC's colour map (bit-interleaved), so VOC masks look as people know them; id 255 is white."""
    colours = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[i] = (r, g, b)
    colours[255] = IGNORE_COLOUR
    return colours


def save_mask(ids, path):
    """Class ids (H, W) as a palette PNG: the pixel values are the ids (readable back with Pillow or any
    tool that reads VOC masks), and viewers show them in colour."""
    image = Image.fromarray(np.asarray(ids, np.uint8), mode="P")
    image.putpalette(palette(256).reshape(-1).tolist())
    image.save(path)


def overlay(image, ids, alpha=0.5):
    """uint8 (H, W, 3): the image with each class painted over it (background, id 0, left clear)."""
    colours = palette(256)[np.asarray(ids, np.uint8)].astype(np.float32)
    mixed = np.asarray(image, np.float32) * (1 - alpha) + colours * alpha
    keep = (np.asarray(ids) == 0)[..., None]
    return np.where(keep, image, np.round(mixed)).astype(np.uint8)


def _enlarged(picture, side=256):
    if max(picture.size) >= side:
        return picture
    factor = side / max(picture.size)
    return picture.resize((round(picture.width * factor), round(picture.height * factor)), Image.NEAREST)


def save_sheet(image, truth, prediction, path, title=""):
    """image | truth overlay | prediction overlay, side by side, with a one-line title."""
    panels = [Image.fromarray(np.asarray(image, np.uint8))] + [
        Image.fromarray(overlay(image, ids)) for ids in (truth, prediction)]
    panels = [_enlarged(p) for p in panels]
    w, h = panels[0].size
    sheet = Image.new("RGB", (3 * w + 8, h + 14), (255, 255, 255))
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * (w + 4), 14))
    ImageDraw.Draw(sheet).text((2, 1), title or "image | truth | prediction", fill=(0, 0, 0))
    sheet.save(path)
