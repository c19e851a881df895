"""Mosaic augmentation (YOLOv4, YOLOv5): four canvases of a batch at half scale around a centre, boxes moved along."""
import tensorflow as tf

from data.boxes.geometry import box_area, wide_enough

# The quadrants in order top-left, top-right, bottom-left, bottom-right, as (below the centre, right of it).
QUADRANTS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))


def mosaic_batch(images, boxes, labels, seed, min_visible, p=1.0, centre=None):
    """Make canvas k of a float batch (b, S, S, 3), with probability `p` each, a mosaic of canvases k, k+1,
    k+2, k+3 (mod b) in its top-left, top-right, bottom-left and bottom-right quadrants around a centre
    (cy, cx): each at half scale, with its corner that faces the centre on it (the top-left quadrant shows
    the bottom-right of canvas k), so every mosaic holds whole objects of four scenes at a new place and
    scale. Where a half canvas does not reach is 0, the letterbox padding.

    The centre is drawn in [S/4, 3S/4] per canvas, rounded to whole pixels (so half-scale pixels are exact
    2x2 means), unless `centre` ((b, 2) or (2,) pixels) gives it. Boxes (b, n, 4) yxyx canvas pixels and
    labels (b, n) (-1: none) come back as (b, 4n, ...): each quadrant's boxes scaled, shifted and clipped
    to it, dropped (-1) where less than `min_visible` of their area is left or they end narrower than 2 px.
    A canvas not drawn keeps its image and its boxes, then -1s. Every draw is a function of `seed`.

        >>> boxes, labels = tf.constant([[[8.0, 8.0, 40.0, 40.0]]] * 4), tf.constant([[1]] * 4)
        >>> x, b, lab = mosaic_batch(tf.zeros([4, 64, 64, 3]), boxes, labels, tf.constant([0, 1], tf.int64), 0.4)
        >>> tuple(b.shape), tuple(lab.shape)
        ((4, 4, 4), (4, 4))
    """
    shape = tf.shape(images)
    b, side = shape[0], shape[1]
    size = tf.cast(side, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    if centre is None:
        centre = tf.round(tf.random.stateless_uniform([b, 2], seeds[1], 0.25, 0.75) * size)
    centre = tf.broadcast_to(tf.cast(centre, tf.float32), [b, 2])
    pixels = tf.range(size) + 0.5  # pixel centres
    mosaic = tf.zeros_like(images)
    moved_boxes, moved_labels, kept = [], [], []
    for j, (below, right) in enumerate(QUADRANTS):
        source = (tf.range(b) + j) % b
        side_of = tf.constant([below, right])
        origin = centre - (1.0 - side_of) * size / 2  # the half canvas's top-left corner
        # crop_and_resize samples canvas pixel u from source pixel 2 * (u + 0.5 - origin) - 0.5 (pixel centres)
        start = 0.5 - 2.0 * origin
        crop = tf.concat([start, start + 2.0 * (size - 1)], axis=1) / (size - 1)
        half = tf.image.crop_and_resize(images, crop, source, tf.stack([side, side]))  # 0 past its edges
        low, high = centre * side_of, centre + (size - centre) * side_of  # the quadrant, yx
        inside = lambda axis: (pixels >= low[:, axis, None]) & (pixels < high[:, axis, None])  # noqa: E731
        quadrant = inside(0)[:, :, None, None] & inside(1)[:, None, :, None]
        mosaic = tf.where(quadrant, half, mosaic)
        moved = tf.gather(boxes, source) / 2.0 + tf.tile(origin, [1, 2])[:, None, :]
        clipped = tf.minimum(tf.maximum(moved, tf.tile(low, [1, 2])[:, None, :]), tf.tile(high, [1, 2])[:, None, :])
        moved_labels.append(tf.gather(labels, source))
        kept.append((moved_labels[-1] >= 0) & (box_area(clipped) >= min_visible * box_area(moved)) & wide_enough(clipped))
        moved_boxes.append(clipped)
    kept = tf.concat(kept, axis=1)
    mosaic_boxes = tf.where(kept[..., None], tf.concat(moved_boxes, axis=1), -1.0)
    mosaic_labels = tf.where(kept, tf.concat(moved_labels, axis=1), -1)
    n = tf.shape(boxes)[1]
    own_boxes = tf.pad(boxes, [[0, 0], [0, 3 * n], [0, 0]], constant_values=-1.0)
    own_labels = tf.pad(labels, [[0, 0], [0, 3 * n]], constant_values=-1)
    chosen = tf.random.stateless_uniform([b], seeds[0]) < p
    return (tf.where(chosen[:, None, None, None], mosaic, images),
            tf.where(chosen[:, None, None], mosaic_boxes, own_boxes),
            tf.where(chosen[:, None], mosaic_labels, own_labels))


def real_first(boxes, labels):
    """Each canvas's boxes (b, m, 4) and labels (b, m) with the real ones (label >= 0) first, in order, cut to
    the most any canvas holds: after a mosaic the box axis the coders' IoU tables span stays as long as the
    batch needs, not 4x the data set's most."""
    order = tf.argsort(tf.cast(labels < 0, tf.int32), axis=1, stable=True)
    most = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(labels >= 0, tf.int32), axis=1)), 1)
    return tf.gather(boxes, order, batch_dims=1)[:, :most], tf.gather(labels, order, batch_dims=1)[:, :most]
