"""Pictures of a face-verification evaluation: the ROC on a log FAR axis, the distances of genuine and
impostor pairs, a 2-D map of the test faces' embeddings and a sheet of pairs with their decisions.

Each PNG is drawn in memory and renamed into place (apps/core/files.py's way), so a reader never finds
half a picture.

    report = verification_report(d, pairs.same, pairs.fold)
    save_roc(report, run / "roc.png")
    save_distance_histogram(d, pairs.same, report["threshold"], run / "distances.png")
    save_embedding_map(embeddings, labels, class_names, run / "embeddings.png")
"""
import io

import numpy as np

from apps.core.files import atomic_write_bytes
from apps.core.plots import plt
from apps.face_verification.verification import l2_normalise

LEGEND_PEOPLE = 20  # more people than this and the map is coloured without a legend


def _save(fig, path, dpi=100):
    """Render `fig` to PNG bytes and write them to `path` atomically."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def save_roc(report, path):
    """TAR against FAR (log axis) from a verification_report: AUC in the legend, the equal-error point, and
    each TAR@FAR figure marked with the impostor pairs behind it (or "too few" where it is None)."""
    roc, impostors = report["roc"], report["impostor_pairs"]
    targets = [entry["far"] for entry in report["tar_at_far"].values()]
    left = min([0.5 / impostors] + [0.5 * f for f in targets])  # a log axis has no 0: FAR 0 is drawn here
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.plot(np.maximum(roc["far"], left), roc["tar"], color="C0", label=f"ROC (AUC = {report['auc']:.4f})")
    ax.plot(max(report["eer"], left), 1 - report["eer"], "o", color="C3", label=f"EER = {report['eer']:.2%}")
    for n, entry in enumerate(report["tar_at_far"].values()):
        colour = f"C{n + 1}"
        ax.axvline(entry["far"], color=colour, ls=":", lw=1)
        if entry["tar"] is None:
            ax.plot([], [], ls=":", color=colour, label=f"FAR {entry['far']:g}: too few impostor pairs ({impostors})")
        else:
            ax.plot(entry["far"], entry["tar"], "s", color=colour,
                    label=f"TAR {entry['tar']:.2%} at FAR {entry['far']:g} ({entry['impostor_pairs']} impostor pairs)")
    ax.set_xscale("log")
    ax.set_xlim(left, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate (share of impostor pairs accepted)")
    ax.set_ylabel("true accept rate (share of genuine pairs accepted)")
    ax.set_title(f"Verification: {report['genuine_pairs']} genuine, {impostors} impostor pairs", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def save_distance_histogram(distances, same, threshold, path, what="squared distance"):
    """Histograms (as densities, so unequal counts compare) of genuine and impostor pair distances, with the
    decision threshold: their overlap is where the errors are. `what`: the distance, for the axis."""
    d, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    bins = np.linspace(min(d.min(), threshold), max(d.max(), threshold), 61)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for mask, name, colour in ((same, "genuine", "C2"), (~same, "impostor", "C3")):
        if mask.any():
            ax.hist(d[mask], bins=bins, density=True, alpha=0.55, color=colour, label=f"{name} pairs ({mask.sum()})")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel(f"{what} between unit embeddings" if what == "squared distance" else what)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def save_embedding_map(embeddings, labels, names, path, max_people=None, seed=0):
    """The test faces on the first two principal components of their unit embeddings, one colour per person
    (a legend naming them when there are at most LEGEND_PEOPLE); `names[label]` names a person (None: the
    label itself); `max_people` draws that many people (seeded) when there are more. Tight, separate
    clusters are what verification needs."""
    unit = l2_normalise(embeddings)
    labels = np.asarray(labels)
    people = np.unique(labels)
    if max_people is not None and len(people) > max_people:
        keep = np.isin(labels, np.random.default_rng(seed).choice(people, max_people, replace=False))
        unit, labels = unit[keep], labels[keep]
    centred = unit - unit.mean(axis=0)
    _, spread, components = np.linalg.svd(centred, full_matrices=False)
    xy = np.zeros((len(unit), 2))
    xy[:, :min(2, len(components))] = centred @ components[:2].T
    explained = np.sum(spread[:2] ** 2) / max(np.sum(spread ** 2), 1e-12)
    people = np.unique(labels)
    colours = plt.cm.tab10 if len(people) <= 10 else plt.cm.tab20 if len(people) <= 20 else plt.cm.turbo
    fig, ax = plt.subplots(figsize=(8 if len(people) <= LEGEND_PEOPLE else 6.5, 6))
    for n, person in enumerate(people):
        colour = colours(n % 20) if len(people) <= 20 else colours(n / max(len(people) - 1, 1))
        points = xy[labels == person]
        name = person if names is None else names[person]
        ax.scatter(points[:, 0], points[:, 1], s=14, color=colour, label=str(name))
    ax.set_title(f"Test faces: {len(unit)} images of {len(people)} people "
                 f"(PCA of unit embeddings, {explained:.0%} of the variance)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(people) <= LEGEND_PEOPLE:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, markerscale=1.5)
    fig.tight_layout()
    _save(fig, path)


def save_pair_sheet(images_a, images_b, distances, same, threshold, path):
    """Pairs side by side, one column each (first image above the second), titled with the distance and the
    decision: green when right, red when wrong. Images are [H, W] or [H, W, C], uint8 or floats in 0..1;
    hardest_pairs() picks the columns worth a look."""
    count = len(distances)
    fig, axes = plt.subplots(2, count, figsize=(1.7 * count, 4), squeeze=False)
    for k in range(count):
        accepted = distances[k] <= threshold
        for row, image in enumerate((images_a[k], images_b[k])):
            image = np.asarray(image)
            image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
            axes[row, k].imshow(image, cmap="gray" if image.ndim == 2 else None)
            axes[row, k].axis("off")
        axes[0, k].set_title(f"d = {distances[k]:.3f}\n{'same' if same[k] else 'different'}, "
                             f"{'accepted' if accepted else 'rejected'}", fontsize=8,
                             color="green" if accepted == bool(same[k]) else "red")
    fig.tight_layout()
    _save(fig, path)
