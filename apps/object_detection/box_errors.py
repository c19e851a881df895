"""Why detections fail: each detection a user would see sorted into a hit or a kind of error.

mAP says how good a detector is, not why it fails; on crowded photos (two animals side by side) the
failures differ in kind: one box over both animals (merged), two boxes on one animal (doubled), a box
that covers its animal badly (loose), a box on nothing (background), an animal with no box (missed).
`evaluate` counts them at the operating point a user sees (`--draw_threshold`), over all test images
and over the crowded ones alone, so that a crowded-photo failure shows as a number.

    >>> truth = [(np.array([[0, 0, 10, 10], [0, 10, 10, 20.]]), np.array([0, 0]), np.array([False, False]))]
    >>> found = [(np.array([[0, 0, 10, 20.], [20, 0, 30, 9]]), np.array([0.9, 0.2]), np.array([0, 0]))]
    >>> e = box_errors(truth, found, 0.3)  # the second box scores under 0.3: not seen
    >>> {k: e["crowded"][k] for k in ("images", "matched", "merged_hits", "missed")}
    {'images': 1, 'matched': 1, 'merged_hits': 1, 'missed': 1}

Rules (pure numpy, boxes yxyx in any one unit per image):
- matching is per class and greedy by descending score, as COCO's: a detection takes the unmatched
  non-crowd truth box of its class with the highest IoU >= `iou`; failing that, a detection lying
  within a crowd box of its class (intersection / detection area >= `iou`, COCO's crowd rule) is
  ignored: neither a hit nor an error.
- an unmatched detection is, in this order: `doubled` (IoU >= `iou` with a truth box of its class
  that a higher-scoring detection matched); `merged` (two or more truth boxes of its class each have
  at least half their area inside it, and its IoU with the smallest box enclosing them is >= `iou`);
  `loose` (its best IoU with a truth box of its class is in [0.1, `iou`)); else `background`.
  Every truth box left unmatched is `missed`.
- a box over two boxes of one size side by side, touching or overlapping, has IoU >= 0.5 with
  each: it matches one (as mAP sees it) and leaves the other missed. Such a matched detection,
  merged by the rule above and nearer the enclosing box than the box it matched, is also counted
  in `merged_hits`, so that merging shows even where it is not an unmatched detection.
- crowded image: two non-crowd truth boxes of one class apart by at most `TOUCH` (5%) of the
  shortest side of the two, along both axes (overlapping or touching boxes: no gap).
"""
import numpy as np

LOOSE_IOU = 0.1  # a detection overlapping its class's box less than this is on background
COVERED = 0.5  # the share of a truth box's area inside a detection for the detection to cover it
TOUCH = 0.05  # boxes apart by at most this share of their shortest side are side by side
KINDS = ("matched", "merged_hits", "doubled", "merged", "loose", "background", "missed", "ignored")


def _area(b):
    return np.maximum(b[..., 2] - b[..., 0], 0) * np.maximum(b[..., 3] - b[..., 1], 0)


def _intersection(a, b):
    """Pairwise intersection areas of boxes a (n, 4) and b (m, 4): (n, m)."""
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.maximum(high - low, 0), axis=-1)


def iou(a, b):
    """Pairwise IoU of yxyx boxes a (n, 4) and b (m, 4): (n, m); 0 where both are empty."""
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def is_crowded(boxes, labels, crowd):
    """True when two non-crowd truth boxes of one class overlap, touch or nearly touch (TOUCH)."""
    keep = ~np.asarray(crowd, bool)
    boxes, labels = np.asarray(boxes, float).reshape(-1, 4)[keep], np.asarray(labels).reshape(-1)[keep]
    for c in np.unique(labels):
        b = boxes[labels == c]
        if len(b) < 2:
            continue
        gap = np.maximum(b[:, None, :2], b[None, :, :2]) - np.minimum(b[:, None, 2:], b[None, :, 2:])  # (n, n, 2)
        short = np.min(b[:, 2:] - b[:, :2], axis=1)
        side = np.minimum(short[:, None], short[None, :])  # the shortest side of each pair
        near = (gap <= TOUCH * side[..., None]).all(axis=-1)  # overlapping: both gaps negative
        if near[~np.eye(len(b), dtype=bool)].any():
            return True
    return False


def _image_errors(truth, detections, score_threshold, iou_threshold):
    """Counts of KINDS and the matched IoUs of one image."""
    boxes, labels, crowd = truth
    boxes, labels = np.asarray(boxes, float).reshape(-1, 4), np.asarray(labels).reshape(-1)
    crowd = np.asarray(crowd, bool).reshape(-1)
    d_boxes, scores, classes = detections
    keep = np.asarray(scores).reshape(-1) >= score_threshold
    d_boxes, scores = np.asarray(d_boxes, float).reshape(-1, 4)[keep], np.asarray(scores).reshape(-1)[keep]
    classes = np.asarray(classes).reshape(-1)[keep]
    counts, ious = dict.fromkeys(KINDS, 0), []
    for c in np.union1d(labels[~crowd], classes):
        t = boxes[(labels == c) & ~crowd]
        regions = boxes[(labels == c) & crowd]
        d = d_boxes[classes == c][np.argsort(-scores[classes == c], kind="stable")]
        overlap = iou(d, t)
        inside = _intersection(d, t) / np.maximum(_area(t), 1e-12)[None, :]  # share of each truth box inside
        in_crowd = (_intersection(d, regions) / np.maximum(_area(d), 1e-12)[:, None] >= iou_threshold).any(axis=1)
        matched = np.zeros(len(t), bool)
        for i in range(len(d)):
            free = np.where(matched, -1.0, overlap[i])
            j = int(np.argmax(free)) if len(t) else -1
            if j >= 0 and free[j] >= iou_threshold:
                matched[j] = True
                counts["matched"] += 1
                counts["merged_hits"] += int(_merge_iou(d[i], t, inside[i]) > free[j])
                ious.append(float(free[j]))
            elif in_crowd[i]:
                counts["ignored"] += 1
            else:
                counts[_error_kind(d[i], t, overlap[i], inside[i], matched, iou_threshold)] += 1
        counts["missed"] += int((~matched).sum())
    return counts, ious


def _error_kind(box, truth, overlap, inside, matched, iou_threshold):
    """doubled, merged, loose or background: see the module's docstring."""
    if (overlap[matched] >= iou_threshold).any():
        return "doubled"
    if _merge_iou(box, truth, inside) >= iou_threshold:
        return "merged"
    return "loose" if len(overlap) and overlap.max() >= LOOSE_IOU else "background"


def _merge_iou(box, truth, inside):
    """IoU of `box` with the smallest box enclosing the truth boxes it covers (COVERED); 0 below two."""
    covered = truth[inside >= COVERED]
    if len(covered) < 2:
        return 0.0
    enclosing = np.concatenate([covered[:, :2].min(axis=0), covered[:, 2:].max(axis=0)])[None]
    return float(iou(box[None], enclosing)[0, 0])


def box_errors(truth, detections, score_threshold, iou=0.5):
    """truth: per image (boxes yxyx (n, 4), labels (n,), crowd (n,)); detections: per image (boxes yxyx
    (m, 4), scores (m,), class ids (m,)); only detections scoring >= score_threshold count.
    Returns {"score_threshold", "iou", "all": {...}, "crowded": {...}}, each part holding the number of
    images, the count of each of KINDS and mean_matched_iou (None without a match)."""
    parts = {"all": ([], []), "crowded": ([], [])}
    for image_truth, image_detections in zip(truth, detections, strict=True):
        counts, ious = _image_errors(image_truth, image_detections, score_threshold, iou)
        for name in ("all", "crowded") if is_crowded(*image_truth) else ("all",):
            parts[name][0].append(counts)
            parts[name][1].extend(ious)
    out = {"score_threshold": float(score_threshold), "iou": float(iou)}
    for name, (counts, ious) in parts.items():
        out[name] = {"images": len(counts), **{k: sum(c[k] for c in counts) for k in KINDS},
                     "mean_matched_iou": float(np.mean(ious)) if ious else None}
    return out


def _part_text(part):
    mean = "" if part["mean_matched_iou"] is None else f" (mean IoU {part['mean_matched_iou']:.2f})"
    hits = f" (+{part['merged_hits']} matched)" if part["merged_hits"] else ""
    return (f"{part['matched']} matched{mean}, {part['doubled']} doubled, {part['merged']} merged{hits}, "
            f"{part['loose']} loose, {part['background']} background, {part['missed']} missed")


def summary_line(errors):
    """One line of box_errors' result, as `evaluate` prints it."""
    return (f"at score >= {errors['score_threshold']:.2f}: {_part_text(errors['all'])}; "
            f"crowded images ({errors['crowded']['images']}): {_part_text(errors['crowded'])}")
