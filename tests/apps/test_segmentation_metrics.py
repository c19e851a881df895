"""Segmentation scores: agreement with a plain NumPy confusion-matrix computation and with Keras' MeanIoU
on random masks, and known small cases for the ISBI pixel error and the adapted Rand error."""
import numpy as np
import pytest

from apps.semantic_segmentation.metrics import (SegmentationScores, confusion_matrix, pixel_error, rand_error,
                                                training_metrics)


def _random_case(seed, classes, shape=(3, 9, 11)):
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, classes, shape)
    masks[rng.random(shape) < 0.2] = 255
    logits = rng.normal(size=(*shape, classes)).astype("float32")
    logits[..., classes - 1] -= 5.0  # the last class is (almost) never predicted
    return masks, logits


def plain_scores(masks, logits, classes):
    """Loops and counts, nothing shared with the code under test."""
    predicted = logits.argmax(-1)
    cm = np.zeros((classes, classes), int)
    for t, p in zip(masks.ravel(), predicted.ravel()):
        if t != 255:
            cm[t, p] += 1
    ious, dices = [], []
    for c in range(classes):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else None)
        dices.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None)
    present = [v for v in ious if v is not None]
    return cm, {"mean_iou": np.mean(present), "pixel_accuracy": np.trace(cm) / cm.sum(),
                "mean_dice": np.mean([v for v in dices if v is not None]), "iou": ious, "dice": dices}


@pytest.mark.parametrize("classes", [2, 5])
def test_agrees_with_plain_numpy_and_keras_mean_iou(classes):
    masks, logits = _random_case(classes, classes)
    cm, expected = plain_scores(masks, logits, classes)
    np.testing.assert_array_equal(confusion_matrix(masks, logits.argmax(-1), classes), cm)
    scores = SegmentationScores(classes)
    for m, lg in zip(masks, logits):  # image by image: the matrix accumulates
        scores.update(m, lg)
    got = scores.result()
    for key in ("mean_iou", "pixel_accuracy", "mean_dice"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    for key in ("iou", "dice"):
        assert [v is None for v in got[key]] == [v is None for v in expected[key]]
        np.testing.assert_allclose([v for v in got[key] if v is not None], [v for v in expected[key] if v is not None])
    keras_iou = training_metrics(classes)[0]
    keras_iou.update_state(masks, logits)
    assert float(keras_iou.result()) == pytest.approx(got["mean_iou"], abs=1e-5)


def test_class_absent_everywhere_is_left_out_of_the_mean():
    masks = np.array([[0, 0, 1, 1]])
    logits = np.eye(3)[[0, 1, 1, 1]][None].astype("float32")  # class 2 in neither
    scores = SegmentationScores(3)
    scores.update(masks, logits)
    got = scores.result()
    assert got["iou"] == [0.5, 2 / 3, None]
    assert got["mean_iou"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert got["dice"][0] == pytest.approx(2 / 3) and got["pixel_accuracy"] == 0.75


def test_ids_beyond_the_classes_are_an_error():
    with pytest.raises(ValueError, match="0..2 or 255"):
        confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)


def _binary_logits(p_foreground):
    p = np.asarray(p_foreground, np.float64)
    return np.stack([np.zeros_like(p), np.log(p / (1 - p))], -1).astype("float32")


def test_pixel_error_is_one_minus_the_best_f1_over_thresholds():
    """Foreground pixels at 0.9, 0.8, 0.3, background at 0.6, 0.1: thresholds give F1 6/8 (t <= 0.1),
    6/7 (0.1 < t <= 0.3), 4/6 (0.3 < t <= 0.6), 4/5 (0.6 < t <= 0.8), 2/4 (0.8 < t <= 0.9): error 1/7."""
    masks = np.array([[1, 1, 1, 0, 0, 255]])
    logits = _binary_logits([[0.9, 0.8, 0.3, 0.6, 0.1, 0.99]])  # the ignored pixel does not count
    scores = SegmentationScores(2)
    scores.update(masks, logits)
    assert scores.result()["pixel_error"] == pytest.approx(1 / 7)
    separable = SegmentationScores(2)
    separable.update(np.array([[1, 1, 0, 0]]), _binary_logits([[0.45, 0.4, 0.3, 0.05]]))  # right at threshold 0.35
    assert separable.result()["pixel_error"] == 0.0
    assert pixel_error(np.array([0, 0]), np.array([5, 0])) == 1.0  # no foreground at all: F1 is 0


def test_adapted_rand_error_known_cases():
    """Two 2x2 cells split by a membrane column. Merging them (or splitting one cell in two) scores
    1 - 24 / ((24 + 56) / 2) = 0.4 with scikit-image's pair counts (n^2 - n per segment)."""
    truth = np.array([[1, 1, 0, 1, 1],
                      [1, 1, 0, 1, 1]])
    assert rand_error(truth, truth) == 0.0
    merged = np.ones_like(truth)
    assert rand_error(truth, merged) == pytest.approx(0.4)
    one_cell = np.array([[1, 1, 1, 1]] * 2)
    split = np.array([[1, 1, 0, 0]] * 2)  # half the cell predicted as wall: predicted background is one segment
    assert rand_error(one_cell, split) == pytest.approx(0.4)
    # ignored pixels neither join truth segments nor bridge predicted ones
    bridged = np.array([[1, 1, 255, 1, 1],
                        [1, 1, 255, 1, 1]])
    assert rand_error(bridged, merged) == 0.0
    assert rand_error(np.zeros((3, 3), int), merged[:, :3]) is None  # no cells: not scored


def test_binary_scores_are_reported_per_image_and_collapse_is_visible():
    truth = np.array([[[1, 1, 0, 1, 1], [1, 1, 0, 1, 1]],
                      [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]])  # the second image has no cells
    all_foreground = np.zeros((*truth.shape, 2), "float32")
    all_foreground[..., 1] = 5.0
    scores = SegmentationScores(2)
    scores.update(truth, all_foreground)
    got = scores.result()
    assert got["adapted_rand_error"] == pytest.approx(0.4)  # the first image only
    assert got["predicted_foreground"] == 1.0
    assert got["foreground_iou"] == pytest.approx(8 / 20)
    assert "pixel_error" not in SegmentationScores(3).result()
