"""How well the anchors cover the training boxes, and anchors fitted to the boxes when they cover too few.

The matcher (boxes.BoxCoder) makes an anchor a positive of a box when their IoU reaches positive_iou.
A box that no anchor reaches gets only the matcher's forced match: one anchor, of low IoU, whose box
target starts far from it; such boxes are learnt poorly. Coverage, the share of training boxes whose
best anchor reaches positive_iou, says how much of a data set the anchors serve; it is computed
exactly and cheaply (best_iou), so anchor_size and the aspect ratios can be searched for the highest
coverage. Only those two are fitted: the levels and the anchors per cell (num_scales x ratios) are
the model's structure, so the heads stay as they are.

    choice = choose_anchors(canvas_boxes, 256, DetectorConfig())  # the raccoon photos' training boxes:
    print(choice.message())  # anchors: coverage 0.39 -> 1.00 (...); anchor_size 2 -> 3.98, aspect_ratios ...
    coder = BoxCoder.from_config(256, DetectorConfig(), choice.anchors)
"""
import dataclasses
from typing import Optional

import numpy as np

from apps.object_detection.boxes import Anchors, BoxCoder, ratios_text

# Fit only when fewer than 95% of the training boxes reach positive_iou with some anchor: below that,
# more than one box in 20 is learnt only through the forced low-IoU match, a loss worth new anchors (the
# raccoon photos at 256 px: 0.39 with the defaults). Above it the few boxes to gain are fewer than the
# run-to-run noise of mAP on a few hundred test images, and anchors a user configured (or the published
# defaults) are better kept than replaced by a fit to one training split (the default scenes: 0.96, kept).
FIT_BELOW = 0.95
MIN_GAIN = 0.01  # adopt fitted anchors only if they cover at least 1% more boxes: less is sampling noise
# The anchor_size the fit may choose, in strides of each level: under 1 an anchor is narrower than the gap
# between its grid points, so boxes of its size lying between them reach none; over 8 the finest level
# takes the largest boxes (on features of the smallest receptive field, with many positives each) and
# the coarse levels' anchors outgrow the canvas: the pyramid used against its design (RetinaNet uses 4).
SIZE_RANGE = (1.0, 8.0)
SEARCH_BOXES = 20_000  # boxes the search scores on (a seeded sample); the coverage printed uses them all
_CHUNK = 50_000  # boxes per step of best_iou: bounds its memory on COCO-sized sets


@dataclasses.dataclass
class Coverage:
    share: float  # of boxes whose best anchor has IoU >= positive_iou
    mean_iou: float  # mean over boxes of the best anchor's IoU (the tie-break)
    best: np.ndarray  # each box's best IoU

    def key(self):
        return self.share, self.mean_iou


@dataclasses.dataclass
class AnchorGrid:
    """What coverage needs of a BoxCoder (its anchors level by level, anchors per cell, positive IoU)."""

    levels: dict
    anchors_per_cell: int
    positive_iou: float

    @property
    def anchors(self):
        return np.concatenate(list(self.levels.values()))


def anchor_grid(size, m, anchors):
    """The anchors BoxCoder.from_config(size, m, anchors) makes with keras-hub's AnchorGenerator, in NumPy
    with the same float32 arithmetic (tests check them equal). Why not the generator itself: it runs its
    ops eagerly one by one, ~80 ms a call, and the search scores about 80 candidates per training run."""
    h_ratios = np.sqrt(np.asarray(anchors.ratios, np.float32))
    w_ratios = np.float32(1) / h_ratios
    levels = {}
    for level in range(m.min_level, m.max_level + 1):
        cells = -(-size // 2 ** level)
        centres = np.arange(cells, dtype=np.float32) * np.float32(size // cells)
        cy, cx = (g.reshape(-1) for g in np.meshgrid(centres, centres, indexing="ij"))
        sides = np.array([int(2 ** level * anchors.size * 2 ** (s / m.num_scales)) for s in range(m.num_scales)],
                         np.float32)
        ws, hs = (w_ratios[:, None] * sides[None]).reshape(-1), (h_ratios[:, None] * sides[None]).reshape(-1)
        cell = np.round(np.stack([-ws, -hs, ws, hs], 1) / np.float32(2))
        xyxy = (np.stack([cx, cy, cx, cy], 1)[:, None] + cell[None]).reshape(-1, 4)
        levels[level] = xyxy[:, [1, 0, 3, 2]]
    return AnchorGrid(levels, m.num_scales * len(anchors.ratios), m.positive_iou)


def _layout(coder):
    """Per level: the anchor centres' grid (ys, xs) and one cell's anchors relative to its centre (A, 4).
    keras-hub's AnchorGenerator repeats one cell's anchors over a product grid; checked, not assumed."""
    out = []
    for anchors in coder.levels.values():
        cells = anchors.reshape(-1, coder.anchors_per_cell, 4).astype(np.float64)
        centres = (cells[:, 0, :2] + cells[:, 0, 2:]) / 2
        cell = cells - np.tile(centres, 2)[:, None, :]
        ys, xs = np.unique(centres[:, 0]), np.unique(centres[:, 1])
        if (len(ys) * len(xs) != len(cells) or len(np.unique(centres, axis=0)) != len(cells)
                or not np.allclose(cell, cell[:1])):
            raise ValueError("the anchors are not one cell's anchors repeated over a grid")
        out.append((ys, xs, cell[0]))
    return out


def anchor_shapes(coder):
    """(height, width) of every distinct anchor shape, level by level: (levels * A, 2)."""
    return np.concatenate([np.stack([c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]], -1) for _, _, c in _layout(coder)])


def _nearest(grid, values):
    """The point of the sorted `grid` nearest each value."""
    i = np.clip(np.searchsorted(grid, values), 1, max(len(grid) - 1, 1))
    below, above = grid[i - 1], grid[np.minimum(i, len(grid) - 1)]
    return np.where(values - below <= above - values, below, above)


def best_iou(coder, boxes):
    """The highest IoU of each yxyx box (n, 4) with any of the coder's anchors, exactly, without the
    (n, anchors) IoU matrix. Why exact: for a fixed anchor shape, the overlap along each axis falls as
    the anchor's centre moves away from the box's, and IoU rises with the overlap, so the best anchor
    of each shape sits on the grid point nearest the box's centre in y and, independently, in x."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    best = np.zeros(len(boxes))
    layout = _layout(coder)
    for start in range(0, len(boxes), _CHUNK):
        b = boxes[start:start + _CHUNK, None, :]  # (n, 1, 4)
        area = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
        for ys, xs, cell in layout:
            mid = (cell[:, :2] + cell[:, 2:]) / 2  # (A, 2): each anchor's centre off the cell's
            y = _nearest(ys, (b[..., 0] + b[..., 2]) / 2 - mid[:, 0])  # (n, A)
            x = _nearest(xs, (b[..., 1] + b[..., 3]) / 2 - mid[:, 1])
            a = np.stack([y, x, y, x], -1) + cell  # (n, A, 4): each shape's best-placed anchor
            inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
                     * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None))
            union = area + (cell[:, 2] - cell[:, 0]) * (cell[:, 3] - cell[:, 1]) - inter
            best[start:start + _CHUNK] = np.maximum(best[start:start + _CHUNK], (inter / union).max(axis=1))
    return best


def coverage(coder, boxes):
    best = best_iou(coder, boxes)
    return Coverage(float(np.mean(best >= coder.positive_iou)), float(np.mean(best)), best)


def aspect_clusters(boxes, k, iterations=100):
    """k aspect ratios (height / width) by 1-D k-means of the boxes' log aspect ratios (log: 2:1 and 1:2
    are equally far from square), started at the quantiles, so the same boxes give the same ratios."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    v = np.log((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]))
    centres = np.quantile(v, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        nearest = np.abs(v[:, None] - centres).argmin(axis=1)
        moved = np.array([v[nearest == j].mean() if np.any(nearest == j) else centres[j] for j in range(k)])
        if np.allclose(moved, centres):
            break
        centres = moved
    return tuple(np.exp(np.sort(centres)))


def _rounded(anchors):
    """3 significant digits: what is printed and recorded is exactly what was scored."""
    return Anchors(float(f"{anchors.size:.3g}"), tuple(float(f"{r:.3g}") for r in anchors.ratios))


def _size_grid(boxes, m):
    """anchor_size candidates in SIZE_RANGE, a factor 2**(1/8) apart, where some anchor is within a factor 2
    of the box sides (1st..99th percentile)."""
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    top_scale = 2 ** ((m.num_scales - 1) / m.num_scales)
    low = min(max(np.quantile(sides, 0.01) / 2 / (2 ** m.max_level * top_scale), SIZE_RANGE[0]), SIZE_RANGE[1])
    high = max(min(2 * np.quantile(sides, 0.99) / 2 ** m.min_level, SIZE_RANGE[1]), low)
    return np.exp2(np.arange(np.log2(low), np.log2(high) + 1e-9, 1 / 8))


def fit_anchors(boxes, size, m, seed=0):
    """Anchors with the highest coverage of `boxes` (canvas yxyx, (n, 4)), mean best IoU breaking ties,
    for the structure of `m` (a DetectorConfig: levels, num_scales, number of ratios, positive_iou).

    The configured ratios and k-means ones (aspect_clusters) each take their best anchor_size on a
    geometric grid (_size_grid, within SIZE_RANGE); the better pair is then improved by coordinate ascent
    on the size and each ratio, in steps of 2**(1/4), 2**(1/8) and 2**(1/16). Scored on a seeded sample of
    at most SEARCH_BOXES boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) > SEARCH_BOXES:
        boxes = boxes[np.sort(np.random.default_rng(seed).choice(len(boxes), SEARCH_BOXES, replace=False))]
    scores = {}

    def scored(anchors):
        anchors = _rounded(anchors)
        if anchors not in scores:
            grid = anchor_grid(size, m, anchors) if SIZE_RANGE[0] <= anchors.size <= SIZE_RANGE[1] else None
            if grid is None or np.any(grid.anchors[:, 2:] <= grid.anchors[:, :2]):  # or a side of 0 pixels
                scores[anchors] = (-1.0, 0.0)
            else:
                scores[anchors] = coverage(grid, boxes).key()
        return scores[anchors], anchors

    configured = Anchors.configured(m)
    starts = [configured.ratios, aspect_clusters(boxes, len(configured.ratios))]
    key, best = max((scored(Anchors(s, r)) for r in starts for s in _size_grid(boxes, m)),
                    key=lambda scored_anchors: scored_anchors[0])
    for step in (2 ** 0.25, 2 ** 0.125, 2 ** 0.0625):
        moved = True
        while moved:
            moved = False
            for i in range(1 + len(best.ratios)):
                for factor in (step, 1 / step):
                    values = [best.size, *best.ratios]
                    values[i] *= factor
                    k, candidate = scored(Anchors(values[0], tuple(values[1:])))
                    if k > key:
                        key, best, moved = k, candidate, True
    return Anchors(best.size, tuple(sorted(best.ratios)))


@dataclasses.dataclass
class AnchorChoice:
    configured: Anchors
    anchors: Anchors  # what the run uses
    before: Optional[Coverage]  # of the configured anchors (None: no training boxes)
    after: Optional[Coverage]  # of `anchors`
    fitted: bool
    reason: str
    positive_iou: float
    shapes: dict  # {"configured": (k, 2) anchor heights and widths, "fitted": the same, when fitted}

    def message(self):
        if self.fitted:
            c, a = self.configured, self.anchors
            return (f"anchors: coverage {self.before.share:.2f} -> {self.after.share:.2f} (mean best IoU "
                    f"{self.before.mean_iou:.2f} -> {self.after.mean_iou:.2f}); anchor_size {c.size:g} -> {a.size:g}, "
                    f"aspect_ratios {ratios_text(c.ratios)} -> {ratios_text(a.ratios)}")
        covered = f"coverage {self.before.share:.2f}, " if self.before else ""
        return f"anchors: as configured ({self.configured.describe()}): {covered}{self.reason}"

    def record(self, mode):
        return anchor_record(self.anchors, self.configured, mode, self.fitted,
                             None if self.after is None else round(self.after.share, 4))


def anchor_record(anchors, configured, mode, fitted=False, coverage=None):
    """What a run keeps of its anchors (in its state): those used, and the flags they came from."""
    return {"anchor_size": anchors.size, "aspect_ratios": list(anchors.ratios), "fitted": fitted, "coverage": coverage,
            "configured": {"anchors": mode, "anchor_size": configured.size, "aspect_ratios": list(configured.ratios)}}


def choose_anchors(boxes, size, m, seed=0):
    """The anchors a new run trains with: the configured ones unless m.anchors is "fit", their coverage of
    the training boxes (canvas yxyx) is under FIT_BELOW and fitted ones cover at least MIN_GAIN more."""
    configured = Anchors.configured(m)
    coder = BoxCoder.from_config(size, m)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    shapes = {"configured": anchor_shapes(coder)}

    def kept(before, reason):
        return AnchorChoice(configured, configured, before, before, False, reason, m.positive_iou, shapes)

    if not len(boxes):
        return kept(None, "no training boxes to measure them on")
    before = coverage(coder, boxes)
    if m.anchors == "config":
        return kept(before, "kept (--model.anchors config)")
    if before.share >= FIT_BELOW:
        return kept(before, f"kept (at least {FIT_BELOW:g})")
    fitted = fit_anchors(boxes, size, m, seed)
    fitted_coder = BoxCoder.from_config(size, m, fitted)
    after = coverage(fitted_coder, boxes)
    if after.share < before.share + MIN_GAIN:
        return kept(before, f"kept (fitted anchors would cover {after.share:.2f}, less than {MIN_GAIN:g} more)")
    shapes["fitted"] = anchor_shapes(fitted_coder)
    return AnchorChoice(configured, fitted, before, after, True, "fitted", m.positive_iou, shapes)
