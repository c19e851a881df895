"""Deterministic segmentation scenes with exact per-pixel masks, built from the embedded images (offline default).

Each scene is an RGB canvas with a textured background, unlabelled clutter (small soft fragments of
other images, class 0 like the background) and 2..N opaque objects: Fashion-MNIST items (their
silhouettes, holes filled) or MNIST digits (their strokes), tinted and shaded by the item's own
pixels. An object's pixels are painted in the image and the mask with the same silhouette, so the
mask is exact, and a later object occludes an earlier one in both alike. Test scenes draw objects
and clutter from the embedded test images only. Scenes are a pure function of (count, seed, size,
objects, split).

    mset = make_mask_scenes(8, seed=0, size=128, objects="fashion", split="train")
    mset.class_names   # ['background', 'clothing', 'trouser', 'footwear', 'bag']
"""
import numpy as np
from PIL import Image, ImageDraw

from data.errors import DataError
from data.generated.scenes import _background, _paste, _tinted
from data.images.sources import load_embedded
from data.masks.sources import MaskSet

# objects: (embedded set, class names after background, embedded label -> class id, fill holes, ink threshold)
OBJECTS = {
    # Fashion-MNIST grouped into shapes a segmenter can tell apart (shirt vs pullover is a classifier's problem)
    "fashion": ("fashion_mnist", ["clothing", "trouser", "footwear", "bag"], [1, 2, 1, 1, 1, 3, 1, 3, 4, 3], True, 0.1),
    "fashion_mnist": ("fashion_mnist", ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                                        "sneaker", "bag", "ankle boot"], list(range(1, 11)), True, 0.1),
    "mnist": ("mnist", [str(i) for i in range(10)], list(range(1, 11)), False, 0.5),
}


def mask_scene_class_names(objects):
    """The class names of scenes drawn from `objects` (background first)."""
    return ["background"] + list(OBJECTS[objects][1])


def _fill_holes(inside):
    """`inside` with every region not connected to the border filled (a coat's dark lining is coat)."""
    padded = np.pad(inside, 1).astype(np.uint8) * 255
    im = Image.fromarray(padded).copy()  # a writable image of its own (fromarray may share the read-only array)
    ImageDraw.floodfill(im, (0, 0), 128)  # the outside, reached from the border
    return (np.asarray(im) != 128)[1:-1, 1:-1]


def _texture(rng, size):
    """Smooth blotches and faint stripes added to the gradient background (values about +-30)."""
    coarse = rng.normal(0, 1, (6, 6)).astype(np.float32)
    blobs = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC), np.float32) * 14
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(5, 16)
    stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period) * rng.uniform(0, 8)
    return np.clip(blobs, -24, 24)[..., None] + stripes[..., None]


def make_mask_scenes(count, seed, size=128, objects="fashion", split="train", min_objects=2, max_objects=5,
                     min_scale=0.25, max_scale=0.55, max_cover=0.5, clutter=4):
    """`count` scenes as a MaskSet (images uint8 (size, size, 3), masks uint8 (size, size), files None).

    Objects are 28x28 embedded images scaled to min_scale..max_scale of the canvas; a new object covers at
    most `max_cover` of any earlier object's visible pixels. Objects come from the embedded set's `split`,
    so test scenes use images no training scene uses."""
    if objects not in OBJECTS:
        raise DataError(f"unknown scene objects {objects!r}; choose one of {', '.join(OBJECTS)}")
    set_name, _, class_of, fill, ink = OBJECTS[objects]
    source = load_embedded(set_name)[split]
    pool, pool_labels = source.images[..., 0], source.labels
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(count):
        canvas = _background(rng, size) + _texture(rng, size)
        for _ in range(rng.integers(0, clutter + 1)):
            src = pool[rng.integers(len(pool))]
            y, x = rng.integers(4, 16, 2)
            side = int(rng.integers(6, 13))
            piece = np.asarray(Image.fromarray(src[y:y + 8, x:x + 8]).resize((side, side), Image.BILINEAR), np.float32) / 255
            py, px = rng.integers(0, size - side, 2)
            _paste(canvas, piece * 0.9, _tinted(rng, 120, 255), py, px)
        mask = np.zeros((size, size), np.uint8)
        instance = np.zeros((size, size), np.int32)  # which object each pixel shows (0: none)
        for k in range(1, rng.integers(min_objects, max_objects + 1) + 1):
            pick = rng.integers(len(pool))
            side = int(rng.uniform(min_scale, max_scale) * size)
            alpha = np.asarray(Image.fromarray(pool[pick]).resize((side, side), Image.BILINEAR), np.float32) / 255
            silhouette = alpha > ink
            if fill:  # holes found at 28x28 (fast), then scaled like the pixels
                filled = Image.fromarray(_fill_holes(pool[pick] > ink * 255).astype(np.uint8) * 255)
                silhouette = np.asarray(filled.resize((side, side), Image.BILINEAR)) > 127
            if not silhouette.any():
                continue
            visible = np.bincount(instance.ravel(), minlength=k)
            for _ in range(20):  # a place that leaves every earlier object most of its pixels
                y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
                covered = np.bincount(instance[y:y + side, x:x + side][silhouette], minlength=k)
                if (covered[1:] <= max_cover * np.maximum(visible[1:], 1)).all():
                    shade = _tinted(rng, 140, 255) * (0.45 + 0.55 * alpha[..., None])
                    canvas[y:y + side, x:x + side][silhouette] = shade[silhouette]
                    mask[y:y + side, x:x + side][silhouette] = class_of[int(pool_labels[pick])]
                    instance[y:y + side, x:x + side][silhouette] = k
                    break
        images.append(np.clip(np.round(canvas), 0, 255).astype(np.uint8))
        masks.append(mask)
    return MaskSet(images, masks, None, mask_scene_class_names(objects))
