"""Pictures every app shares: learning curves (the bias/variance picture) and attention maps."""
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_history(csv_path):
    """history.csv -> {column: [floats]}, one row per epoch (the last row wins for a repeated epoch)."""
    rows = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    columns = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue  # empty: e.g. no validation split
            columns.setdefault(key, []).append(number)
    return columns


def plot_learning_curves(csv_path, png_path):
    """Train vs validation for the loss and each metric, one panel each."""
    history = read_history(csv_path)
    epochs = [e + 1 for e in history.get("epoch", [])]
    names = [k for k in history if k not in ("epoch", "learning_rate") and not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history[name], "o-", label="train")
        if "val_" + name in history:
            ax.plot(epochs, history["val_" + name], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def plot_attention(weights, source_pieces, target_pieces, png_path, title=""):
    """A heat map of attention weights [target, source]: which source pieces each output piece looked at."""
    fig, ax = plt.subplots(figsize=(max(3, 0.45 * len(source_pieces) + 1.5), max(2.5, 0.4 * len(target_pieces) + 1.2)))
    ax.imshow(weights, cmap="viridis", vmin=0.0, aspect="auto")
    ax.set_xticks(range(len(source_pieces)), source_pieces, rotation=60, ha="right")
    ax.set_yticks(range(len(target_pieces)), target_pieces)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
