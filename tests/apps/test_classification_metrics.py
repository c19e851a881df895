"""classification_report on a hand-computed example: accuracy, top-5, per-class precision/recall/F1
(a class never predicted, a class never present), macro F1 and the confusion matrix."""
import numpy as np
import pytest

from apps.image_classification.metrics import classification_report

CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox"]
ANT, BEE, CAT, DOG, EEL, FOX = range(6)
# (true class, classes from most to least probable): the first is the prediction
EXAMPLES = [
    (ANT, [ANT, BEE, CAT, DOG, EEL, FOX]),
    (ANT, [ANT, CAT, BEE, EEL, FOX, DOG]),
    (ANT, [BEE, CAT, DOG, EEL, FOX, ANT]),  # wrong, and last: outside the top 5
    (BEE, [BEE, ANT, CAT, DOG, EEL, FOX]),
    (BEE, [ANT, BEE, CAT, DOG, EEL, FOX]),  # wrong, second: in the top 5
    (CAT, [CAT, ANT, BEE, DOG, EEL, FOX]),
    (CAT, [CAT, BEE, ANT, DOG, EEL, FOX]),
    (CAT, [CAT, DOG, EEL, FOX, ANT, BEE]),
    (CAT, [FOX, CAT, ANT, BEE, DOG, EEL]),  # wrong, second
    (DOG, [CAT, ANT, BEE, EEL, FOX, DOG]),  # wrong, last
    (DOG, [BEE, ANT, CAT, EEL, DOG, FOX]),  # wrong, fifth: just inside the top 5
    (EEL, [EEL, ANT, BEE, CAT, DOG, FOX]),
]
# Confusion matrix (true down, predicted across), counted from EXAMPLES by hand:
CONFUSION = [[2, 1, 0, 0, 0, 0],   # ant: support 3
             [1, 1, 0, 0, 0, 0],   # bee: 2
             [0, 0, 3, 0, 0, 1],   # cat: 4
             [0, 1, 1, 0, 0, 0],   # dog: 2, never predicted
             [0, 0, 0, 0, 1, 0],   # eel: 1
             [0, 0, 0, 0, 0, 0]]   # fox: never present, predicted once
# precision = diagonal / column sum (3, 3, 4, 0, 1, 1); recall = diagonal / row sum (3, 2, 4, 2, 1, 0); 0/0 -> 0
PER_CLASS = {"ant": (2 / 3, 2 / 3, 2 / 3, 3),
             "bee": (1 / 3, 1 / 2, 2 / 5, 2),   # F1 = 2 (1/3)(1/2) / (1/3 + 1/2)
             "cat": (3 / 4, 3 / 4, 3 / 4, 4),
             "dog": (0.0, 0.0, 0.0, 2),          # never predicted: precision 0/0 -> 0
             "eel": (1.0, 1.0, 1.0, 1),
             "fox": (0.0, 0.0, 0.0, 0)}          # never present: recall 0/0 -> 0, precision 0/1


def _probabilities(examples):
    """Each example's ranking as probabilities 0.40, 0.25, 0.15, 0.10, 0.06, 0.04."""
    levels = np.array([0.40, 0.25, 0.15, 0.10, 0.06, 0.04])
    probabilities = np.zeros((len(examples), len(levels)))
    for i, (_, ranking) in enumerate(examples):
        probabilities[i, ranking] = levels
    return probabilities


def test_report_on_a_hand_computed_example():
    labels = np.array([label for label, _ in EXAMPLES])
    report = classification_report(labels, _probabilities(EXAMPLES), CLASSES)
    assert report["examples"] == 12
    assert report["accuracy"] == pytest.approx(7 / 12)  # the diagonal: 2 + 1 + 3 + 0 + 1 + 0
    assert report["top5_accuracy"] == pytest.approx(10 / 12)  # all but the two ranked last
    assert report["confusion_matrix"] == CONFUSION
    assert list(report["per_class"]) == CLASSES
    for name, (precision, recall, f1, support) in PER_CLASS.items():
        got = report["per_class"][name]
        assert got["precision"] == pytest.approx(precision), name
        assert got["recall"] == pytest.approx(recall), name
        assert got["f1"] == pytest.approx(f1), name
        assert got["support"] == support and isinstance(got["support"], int), name
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 5 + 3 / 4 + 0 + 1 + 0) / 6)  # = 169/360, every class counts
    assert all(np.isfinite(v) for c in report["per_class"].values() for v in c.values())


def test_fewer_than_five_classes_report_no_top5():
    labels = np.array([0, 1, 2, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    report = classification_report(labels, probabilities, ["a", "b", "c"])
    assert "top5_accuracy" not in report
    assert report["accuracy"] == 0.5
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [1, 0, 1]]
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # never predicted
    assert report["per_class"]["c"]["precision"] == 0.5 and report["per_class"]["c"]["recall"] == 0.5
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0 + 0.5) / 3)  # a: precision 1/2, recall 1
