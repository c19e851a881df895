"""A picture of the vectors: query words and their nearest neighbours, projected to 2-D by PCA."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from apps.word_embeddings.model import normalized  # noqa: E402


def plot_neighbourhoods(vectors, vocabulary, neighbours, path):
    """Scatter each query word (bold) with its neighbours, one colour per query, on the first two
    principal components of the unit vectors of all the words shown."""
    index = {w: i for i, w in enumerate(vocabulary)}
    groups = [[q] + [w for w, _ in near] for q, near in neighbours.items()]
    words = [w for group in groups for w in group]
    unit = normalized(vectors[[index[w] for w in words]])
    centred = unit - unit.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ components[:2].T
    fig, ax = plt.subplots(figsize=(9, 7))
    start = 0
    for n, group in enumerate(groups):
        colour = plt.cm.tab10(n % 10)
        points = xy[start:start + len(group)]
        ax.scatter(points[:, 0], points[:, 1], color=colour, s=14)
        for (x, y), word in zip(points, group):
            ax.annotate(word, (x, y), fontsize=11 if word == group[0] else 8, color=colour,
                        fontweight="bold" if word == group[0] else "normal", xytext=(3, 2), textcoords="offset points")
        start += len(group)
    ax.set_title("Nearest neighbours (PCA of unit vectors)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
