"""The training split as the detector sees it, reported before training: printed, and drawn to
<run_dir>/data_report.png.

Sizes are letterboxed canvas pixels (data.image_size), which is what the anchors are laid on, so a box
histogram can be read against the anchor shapes drawn beside it; coverage is anchor_fit's. Why here and
not in data/boxes: only this app reads boxes so far; the statistics move down when a second one does.

    stats = box_statistics(train_split)
    print("\\n".join(summary_lines(stats, choice, 256)))
    draw_report(stats, choice, 256, run_dir / "data_report.png")
"""
import dataclasses

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from apps.core.plots import plt

REPORT = "data_report.png"
CLASSES_PRINTED = 12  # the most frequent classes printed; the picture shows up to 40
_DRAWN_BOXES = 5000  # boxes in the scatter plot (a seeded sample of bigger sets)


@dataclasses.dataclass
class BoxStatistics:
    images: int
    per_image: np.ndarray  # objects per image (images,)
    boxes: np.ndarray  # canvas yxyx (n, 4)
    labels: np.ndarray  # (n,)
    class_names: list

    @property
    def heights(self):
        return self.boxes[:, 2] - self.boxes[:, 0]

    @property
    def widths(self):
        return self.boxes[:, 3] - self.boxes[:, 1]

    def class_counts(self):
        return np.bincount(self.labels, minlength=len(self.class_names))


def box_statistics(dset):
    """A DetectionSet's training targets (no COCO crowd regions) in canvas pixels, with their labels and the count
    per image."""
    targets = dset.targets()
    boxes = [b for b, _ in targets]
    return BoxStatistics(len(dset), np.array([len(b) for b in boxes], int),
                         np.concatenate(boxes + [np.zeros((0, 4), np.float32)]).astype(np.float64),
                         np.concatenate([np.asarray(lab, int) for _, lab in targets] + [np.zeros(0, int)]),
                         list(dset.class_names))


def _spread(values, digits=0):
    q = np.quantile(values, [0.5, 0.05, 0.95])
    return f"median {q[0]:.{digits}f} (5-95%: {q[1]:.{digits}f}-{q[2]:.{digits}f})"


def summary_lines(stats, choice, size, held_out=None, note=None):
    """The printed report: counts, box sizes and shapes, classes, and the anchors' coverage; `held_out`:
    (boxes, coverage of the configured anchors, coverage of those used) of the validation split, which
    tells whether fitted anchors hold up beyond the boxes they were fitted to. Without a `choice` (an
    architecture whose anchors are not fitted) `note` says what its anchors are."""
    n = len(stats.boxes)
    lines = [f"data: {stats.images} training images, {n} objects ({n / max(stats.images, 1):.2f} per image, at most "
             f"{stats.per_image.max(initial=0)}; {int(np.sum(stats.per_image == 0))} images without any)"]
    if n:
        lines.append(f"boxes in {size}x{size} canvas pixels: width {_spread(stats.widths)}, height "
                     f"{_spread(stats.heights)}, height/width {_spread(stats.heights / stats.widths, 2)}")
    counts = stats.class_counts()
    order = np.argsort(-counts, kind="stable")[:CLASSES_PRINTED]
    more = len(counts) - len(order)
    lines.append("classes: " + ", ".join(f"{stats.class_names[i]} {counts[i]}" for i in order)
                 + (f" and {more} more" if more > 0 else ""))
    if choice is None:
        return lines + [note]
    if choice.before is not None:
        lines.append(f"configured anchors ({choice.configured.describe()}): coverage {choice.before.share:.2f} (share "
                     f"of boxes whose best anchor reaches IoU {choice.positive_iou:g}), mean best IoU "
                     f"{choice.before.mean_iou:.2f}")
    lines.append(choice.message())
    if held_out is not None:
        boxes, before, after = held_out
        used = f", with the fitted ones {after.share:.2f}" if choice.fitted else ""
        lines.append(f"validation boxes ({len(boxes)}): coverage {before.share:.2f} with the configured anchors{used}")
    return lines


def draw_report(stats, choice, size, path, note=None):
    """Eight panels: objects per image, box sides, aspect ratios, centres, classes, box shapes against the
    anchor shapes, best-IoU histograms and coverage by box size (configured and, if fitted, fitted anchors);
    without a `choice` the anchor panels stay empty and `note` is the title."""
    fig, axes = plt.subplots(2, 4, figsize=(20, 9))
    (a_count, a_sides, a_aspect, a_centre), (a_class, a_shape, a_iou, a_size) = axes
    a_count.hist(stats.per_image, bins=np.arange(stats.per_image.max(initial=0) + 2) - 0.5, color="tab:blue")
    a_count.set(title=f"objects per image ({stats.images} images)", xlabel="objects", ylabel="images")
    if len(stats.boxes):
        _box_panels(stats, choice, size, (a_sides, a_aspect, a_centre, a_shape, a_iou, a_size))
    counts = stats.class_counts()[:40]
    a_class.barh(np.arange(len(counts)), counts, color="tab:blue")
    a_class.set_yticks(np.arange(len(counts)), stats.class_names[:40], fontsize=7)
    a_class.invert_yaxis()
    a_class.set(title="objects per class", xlabel="objects")
    fig.suptitle(choice.message() if choice else note, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _box_panels(stats, choice, size, axes):
    a_sides, a_aspect, a_centre, a_shape, a_iou, a_size = axes
    h, w = stats.heights, stats.widths
    bins = np.geomspace(max(min(h.min(), w.min()), 0.5), max(h.max(), w.max()), 30)
    a_sides.hist([w, h], bins=bins, label=["width", "height"], histtype="step", linewidth=1.5)
    a_sides.set(title="box sides (canvas px)", xlabel="pixels", ylabel="boxes")
    a_sides.legend()
    aspect = h / w
    a_aspect.hist(aspect, bins=np.geomspace(aspect.min(), aspect.max() * 1.001 + 1e-9, 30), color="tab:blue")
    for name, anchors, style in _anchor_sets(choice):
        for r in anchors.ratios:
            a_aspect.axvline(r, linestyle=style, color="k", label=f"{name} ratios" if r == anchors.ratios[0] else None)
    a_aspect.set(title="aspect ratio height/width", xlabel="height / width", ylabel="boxes")
    if choice is not None:
        a_aspect.legend(fontsize=8)
    a_centre.hist2d((stats.boxes[:, 1] + stats.boxes[:, 3]) / 2, (stats.boxes[:, 0] + stats.boxes[:, 2]) / 2,
                    bins=24, range=[[0, size], [0, size]], cmap="viridis")
    a_centre.set(title="box centres", xlabel="x", ylabel="y", aspect="equal")
    a_centre.invert_yaxis()
    pick = np.random.default_rng(0).permutation(len(w))[:_DRAWN_BOXES]
    a_shape.scatter(w[pick], h[pick], s=4, alpha=0.3, label="boxes")
    for (name, _, _), marker in zip(_anchor_sets(choice), ("x", "+")):
        shapes = choice.shapes[name]
        a_shape.scatter(shapes[:, 1], shapes[:, 0], marker=marker, s=60, color="k" if marker == "x" else "tab:red",
                        label=f"{name} anchors")
    a_shape.set(title="box shapes and anchor shapes", xlabel="width", ylabel="height")
    a_shape.legend(fontsize=8)
    _log_scale(a_shape, "x")
    _log_scale(a_shape, "y")
    for ax in (a_sides, a_aspect):
        _log_scale(ax, "x")
    if choice is None:
        a_iou.set_visible(False)
        a_size.set_visible(False)
        return
    sides = np.sqrt(h * w)
    edges = np.geomspace(sides.min(), sides.max() * 1.001, 11)
    which = np.clip(np.digitize(sides, edges) - 1, 0, 9)
    for name, cover in (("configured", choice.before), ("fitted", choice.after if choice.fitted else None)):
        if cover is None:
            continue
        label = f"{name}: coverage {cover.share:.2f}, mean {cover.mean_iou:.2f}"
        a_iou.hist(cover.best, bins=np.linspace(0, 1, 41), histtype="step", linewidth=1.5, label=label)
        share = [np.mean(cover.best[which == i] >= choice.positive_iou) if np.any(which == i) else np.nan
                 for i in range(10)]
        a_size.plot(np.sqrt(edges[:-1] * edges[1:]), share, "o-", label=name)
    a_iou.axvline(choice.positive_iou, color="k", linestyle=":", label=f"positive_iou {choice.positive_iou:g}")
    a_iou.set(title="best anchor IoU per box", xlabel="IoU", ylabel="boxes")
    a_iou.legend(fontsize=8)
    a_size.set(ylim=(-0.02, 1.02), title=f"share of boxes reaching IoU {choice.positive_iou:g}",
               xlabel="box side sqrt(w*h) (canvas px)", ylabel="coverage")
    a_size.legend(fontsize=8)
    _log_scale(a_size, "x")


def _log_scale(ax, which):
    """A log axis labelled in plain numbers: 1, 2, 5 a decade, or 1, 1.5, 2, 3, 5, 7 over less than one."""
    getattr(ax, f"set_{which}scale")("log")
    low, high = getattr(ax, f"get_{which}lim")()
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1, 2, 5) if high > 10 * low else (1, 1.5, 2, 3, 5, 7)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _anchor_sets(choice):
    """(name, Anchors, line style) of the configured anchors and, when fitted, the fitted ones."""
    if choice is None:
        return []
    sets = [("configured", choice.configured, "--")]
    return sets + [("fitted", choice.anchors, "-")] if choice.fitted else sets
