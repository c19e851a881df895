"""Deterministic multi-object scenes built from the embedded classification images (offline default).

Each scene is an RGB canvas with a smooth random background, unlabelled clutter (small fragments
of other images) and 2..N tinted objects (MNIST digits or Fashion-MNIST items) at varied scales,
some overlapping. A box is the exact extent of the object's visible ink (alpha > 0.25), not its
28x28 frame. Scenes are a pure function of (seed, index range, source split).
"""
import numpy as np
from PIL import Image

from data.images.sources import load_embedded

INK = 0.25  # alpha above which a pixel counts as part of the object


def _tinted(rng, low, high):
    return rng.uniform(low, high, 3).astype(np.float32)


def _background(rng, size):
    a, b = _tinted(rng, 0, 90), _tinted(rng, 0, 90)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    canvas = a + (b - a) * t[..., None]
    return canvas + rng.normal(0, 6, canvas.shape).astype(np.float32)


def _alpha(image, side):
    return np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR), np.float32) / 255.0


def _paste(canvas, alpha, colour, y, x):
    h, w = alpha.shape
    region = canvas[y:y + h, x:x + w]
    region += (colour - region) * alpha[..., None]


def _iou(box, boxes):
    if not boxes:
        return 0.0
    b = np.asarray(boxes)
    inter = (np.clip(np.minimum(box[2], b[:, 2]) - np.maximum(box[0], b[:, 0]), 0, None)
             * np.clip(np.minimum(box[3], b[:, 3]) - np.maximum(box[1], b[:, 1]), 0, None))
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    return float(np.max(inter / (area(np.asarray(box)) + area(b) - inter)))


def make_scenes(count, seed, size=128, objects="mnist", split="train", min_objects=2, max_objects=5,
                min_scale=0.2, max_scale=0.45, max_overlap=0.3, clutter=4):
    """`count` scenes: (images uint8 (n, size, size, 3), boxes [(k, 4) yxyx], labels [(k,)], class names).
    Objects come from the embedded set's `split`, so test scenes use images no training scene uses."""
    source = load_embedded(objects)[split]
    pool, pool_labels = source.images[..., 0], source.labels
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), np.uint8)
    all_boxes, all_labels = [], []
    for n in range(count):
        canvas = _background(rng, size)
        for _ in range(rng.integers(0, clutter + 1)):
            src = pool[rng.integers(len(pool))]
            y, x = rng.integers(4, 16, 2)
            side = int(rng.integers(6, 13))
            piece = np.asarray(Image.fromarray(src[y:y + 8, x:x + 8]).resize((side, side), Image.BILINEAR), np.float32) / 255
            py, px = rng.integers(0, size - side, 2)
            _paste(canvas, piece * 0.9, _tinted(rng, 120, 255), py, px)
        boxes, labels = [], []
        for _ in range(rng.integers(min_objects, max_objects + 1)):
            pick = rng.integers(len(pool))
            side = int(rng.uniform(min_scale, max_scale) * size)
            alpha = _alpha(pool[pick], side)
            rows, cols = np.nonzero(alpha.max(axis=1) > INK)[0], np.nonzero(alpha.max(axis=0) > INK)[0]
            if not len(rows):
                continue
            for _ in range(20):  # a place that overlaps the others at most max_overlap
                y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
                box = [y + rows[0], x + cols[0], y + rows[-1] + 1, x + cols[-1] + 1]
                if _iou(box, boxes) <= max_overlap:
                    _paste(canvas, alpha, _tinted(rng, 140, 255), y, x)
                    boxes.append(box)
                    labels.append(int(pool_labels[pick]))
                    break
        images[n] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
        all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        all_labels.append(np.asarray(labels, np.int32))
    return images, all_boxes, all_labels, source.class_names
