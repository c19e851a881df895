"""Classification metrics: accuracy, top-5, per-class precision/recall/F1 and a confusion matrix."""
import numpy as np

from apps.core.plots import plt


def classification_report(labels, probabilities, class_names):
    """Metrics of predicted `probabilities` (n, k) against integer `labels` (n,)."""
    k = len(class_names)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_pos = np.diag(confusion).astype(float)
    precision = np.divide(true_pos, confusion.sum(axis=0), out=np.zeros(k), where=confusion.sum(axis=0) > 0)
    recall = np.divide(true_pos, confusion.sum(axis=1), out=np.zeros(k), where=confusion.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    report = {"examples": int(len(labels)), "accuracy": float((predicted == labels).mean())}
    if k >= 5:
        top5 = np.argsort(-probabilities, axis=1)[:, :5]
        report["top5_accuracy"] = float((top5 == labels[:, None]).any(axis=1).mean())
    report["macro_f1"] = float(f1.mean())
    report["per_class"] = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                           for name, p, r, f, s in zip(class_names, precision, recall, f1, confusion.sum(axis=1))}
    report["confusion_matrix"] = confusion.tolist()
    return report


def plot_confusion_matrix(confusion, class_names, path):
    """Row-normalised confusion matrix with counts, true class down, predicted across."""
    k = len(class_names)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * k, 1 + 0.6 * k))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=60, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if confusion[i, j]:
                ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
