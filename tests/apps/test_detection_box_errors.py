"""The box-error diagnostic (apps/object_detection/box_errors.py) on hand-built images with known answers:
each kind of error alone, the crowded-image rule, the score threshold, crowd regions, wrong classes."""
import doctest

import numpy as np
import pytest

from apps.object_detection import box_errors as module
from apps.object_detection.box_errors import KINDS, box_errors, iou, is_crowded, summary_line

A, B = [0, 0, 10, 10], [0, 12, 10, 22]  # two 10-px boxes, 2 px apart: side by side, not touching


def truth(boxes, labels=None, crowd=None):
    n = len(boxes)
    return (np.array(boxes, np.float32).reshape(-1, 4), np.array(labels or [0] * n, np.int32),
            np.array(crowd or [False] * n, bool))


def found(boxes, scores=None, classes=None):
    n = len(boxes)
    return (np.array(boxes, np.float32).reshape(-1, 4), np.array(scores or [0.9] * n, np.float32),
            np.array(classes or [0] * n, np.int32))


def counts(t, d, threshold=0.3, part="all"):
    """The non-zero counts of one image's errors."""
    result = box_errors([t], [d], threshold)[part]
    return {k: result[k] for k in KINDS if result[k]}


def test_docstring_example():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_iou_known_values():
    np.testing.assert_allclose(iou(np.array([A], float), np.array([[0, 5, 10, 15], [20, 20, 30, 30], A], float)),
                               [[1 / 3, 0.0, 1.0]])
    assert iou(np.zeros((0, 4)), np.array([A], float)).shape == (0, 1)


def test_a_perfect_detection_is_matched_with_iou_one():
    result = box_errors([truth([A])], [found([A])], 0.3)
    assert result["score_threshold"] == 0.3 and result["iou"] == 0.5
    assert result["all"] == {"images": 1, **dict.fromkeys(KINDS, 0), "matched": 1, "mean_matched_iou": 1.0}
    assert result["crowded"] == {"images": 0, **dict.fromkeys(KINDS, 0), "mean_matched_iou": None}


def test_a_second_box_on_a_matched_object_is_doubled():
    # listed first but scoring lower: the exact box matches, the shifted one (IoU 9/11) is the double
    result = box_errors([truth([A])], [found([[0, 1, 10, 11], A], [0.8, 0.9])], 0.3)["all"]
    assert {k: result[k] for k in KINDS if result[k]} == {"matched": 1, "doubled": 1}
    assert result["mean_matched_iou"] == 1.0


def test_one_box_over_two_side_by_side_is_merged_and_both_are_missed():
    assert counts(truth([A, B]), found([[0, 0, 10, 22]])) == {"merged": 1, "missed": 2}  # IoU 100/220 with each
    assert counts(truth([A, B]), found([[0, 0, 10, 40]])) == {"merged": 1, "missed": 2}  # enclosing IoU 220/400
    # too large: covers both but fits their enclosing box badly (220/1200), and each box under 0.1: background
    assert counts(truth([A, B]), found([[0, 0, 30, 40]])) == {"background": 1, "missed": 2}


def test_a_merged_box_that_matches_one_of_two_touching_boxes_is_a_merged_hit():
    # two touching 10-px boxes: their enclosing box has IoU 0.5 with each, so it matches one as mAP sees it
    touching = truth([A, [0, 10, 10, 20]])
    assert counts(touching, found([[0, 0, 10, 20]])) == {"matched": 1, "merged_hits": 1, "missed": 1}
    # a tight box on one of two overlapping boxes is a plain match, not a merge
    assert counts(truth([A, [0, 8, 10, 18]]), found([A])) == {"matched": 1, "missed": 1}


def test_a_box_overlapping_its_object_badly_is_loose():
    assert counts(truth([A]), found([[0, 0, 10, 30]])) == {"loose": 1, "missed": 1}  # IoU 1/3
    assert counts(truth([A]), found([[0, 0, 10, 110]])) == {"background": 1, "missed": 1}  # IoU 0.09 < 0.1


def test_a_box_on_nothing_is_background_and_an_object_without_box_is_missed():
    assert counts(truth([A]), found([[50, 50, 60, 60]])) == {"background": 1, "missed": 1}
    assert counts(truth([]), found([A])) == {"background": 1}
    assert counts(truth([A]), found([])) == {"missed": 1}
    assert box_errors([truth([A])], [found([])], 0.3)["all"]["mean_matched_iou"] is None


def test_crowded_images_are_those_with_touching_boxes_of_one_class():
    assert is_crowded(*truth([A, [0, 5, 10, 15]]))  # overlapping
    assert is_crowded(*truth([A, [0, 10, 10, 20]]))  # touching
    assert is_crowded(*truth([A, [0, 10.4, 10, 20]]))  # a gap of 0.4 px <= 5% of 10 px
    assert is_crowded(*truth([A, [10.4, 10.4, 20, 20]]))  # diagonal neighbours, both gaps small
    assert not is_crowded(*truth([A, B]))  # 2 px apart
    assert not is_crowded(*truth([A, [0, 50, 10, 60]]))
    assert not is_crowded(*truth([A, [0, 5, 10, 15]], [0, 1]))  # overlapping, of two classes
    assert not is_crowded(*truth([A, [0, 5, 10, 15]], crowd=[False, True]))  # one is a crowd region
    assert not is_crowded(*truth([A])) and not is_crowded(*truth([]))


def test_the_crowded_part_counts_only_crowded_images():
    crowded = truth([A, [0, 8, 10, 18]])
    alone = truth([A])
    result = box_errors([crowded, alone], [found([A]), found([[0, 0, 10, 12]])], 0.3)
    assert result["all"]["images"] == 2 and result["crowded"]["images"] == 1
    assert (result["all"]["matched"], result["all"]["missed"]) == (2, 1)
    assert (result["crowded"]["matched"], result["crowded"]["missed"]) == (1, 1)
    assert result["all"]["mean_matched_iou"] == pytest.approx((1 + 10 / 12) / 2)
    assert result["crowded"]["mean_matched_iou"] == 1.0


def test_detections_below_the_score_threshold_are_not_seen():
    assert counts(truth([A]), found([A, [50, 50, 60, 60]], [0.29, 0.1])) == {"missed": 1}
    assert counts(truth([A]), found([A], [0.3])) == {"matched": 1}  # at the threshold: seen
    assert counts(truth([A]), found([A, [50, 50, 60, 60]], [0.29, 0.1]), threshold=0.0) == {"matched": 1,
                                                                                             "background": 1}


def test_crowd_regions_are_neither_hits_nor_misses():
    region = truth([[0, 0, 50, 50]], crowd=[True])
    assert counts(region, found([[10, 10, 20, 20]])) == {"ignored": 1}  # inside the region
    assert counts(region, found([[40, 40, 60, 60]])) == {"background": 1}  # a quarter inside: an error
    assert counts(region, found([])) == {}
    # an object beside a crowd region: matched as usual
    assert counts(truth([[0, 0, 50, 50], [60, 60, 70, 70]], crowd=[True, False]), found([[60, 60, 70, 70]])) == {
        "matched": 1}


def test_a_box_of_the_wrong_class_counts_for_its_own_class():
    assert counts(truth([A]), found([A], classes=[1])) == {"background": 1, "missed": 1}
    # of class 1 beside a class-1 object (IoU 1/3): loose; both objects missed
    assert counts(truth([A, [0, 5, 10, 15]], [0, 1]), found([A], classes=[1])) == {"loose": 1, "missed": 2}


def test_every_detection_and_object_is_counted_once():
    rng = np.random.default_rng(0)
    images = []
    for _ in range(20):
        corner = rng.uniform(0, 80, (6, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(5, 30, (6, 2))], 1)
        t = truth(boxes[:3].tolist(), rng.integers(0, 2, 3).tolist(), (rng.uniform(size=3) < 0.2).tolist())
        images.append((t, found(boxes[3:].tolist() + boxes[:2].tolist(), rng.uniform(size=5).tolist(),
                                rng.integers(0, 2, 5).tolist())))
    result = box_errors([t for t, _ in images], [d for _, d in images], 0.3)["all"]
    seen = sum(int((d[1] >= 0.3).sum()) for _, d in images)
    objects = sum(int((~t[2]).sum()) for t, _ in images)
    kinds = ("matched", "doubled", "merged", "loose", "background", "ignored")
    assert sum(result[k] for k in kinds) == seen and result["matched"] + result["missed"] == objects


def test_summary_line():
    line = summary_line(box_errors([truth([A, B]), truth([A, [0, 10, 10, 20]])],
                                   [found([A, [0, 0, 10, 22]], [0.9, 0.8]), found([[0, 0, 10, 20]])], 0.3))
    assert line == ("at score >= 0.30: 2 matched (mean IoU 0.75), 0 doubled, 1 merged (+1 matched), 0 loose, "
                    "0 background, 2 missed; crowded images (1): 1 matched (mean IoU 0.50), 0 doubled, 0 merged "
                    "(+1 matched), 0 loose, 0 background, 1 missed")
