"""Side-by-side sheets of style transfer: rows of titled pictures (content, style, results)."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from apps.core.files import atomic_write_bytes  # noqa: E402


def _write(fig, path):
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def save_loss_curves(history, path):
    """Gatys' loss terms per step ({part: [float]}), log scale: the weighted total and its parts."""
    fig, axis = plt.subplots(figsize=(6, 4))
    for part, values in history.items():
        if len(values) and min(values) > 0:
            axis.plot(np.arange(1, len(values) + 1), values, label=part)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_title("Gatys optimisation: loss terms (weighted)")
    axis.legend()
    _write(fig, path)


def save_sheet(rows, path, cell=3.0):
    """`rows`: lists of (title, uint8 image [h, w, 3]); one row per list, titles above the pictures."""
    columns = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(cell * columns, cell * len(rows)), squeeze=False)
    for axis_row, row in zip(axes, rows):
        for axis in axis_row:
            axis.axis("off")
        for axis, (title, image) in zip(axis_row, row):
            axis.imshow(np.asarray(image, np.uint8))
            axis.set_title(title, fontsize=9)
    _write(fig, path)
