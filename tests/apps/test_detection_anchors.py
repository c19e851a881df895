"""Anchor coverage against a brute-force IoU, anchors fitted to boxes they miss (and good ones kept), the data
report, and the recorded anchors used by a loaded run (a run's record, its resume and its export:
test_object_detection.py)."""

import numpy as np
import pytest
from PIL import Image

from apps.core.config import apply_overrides
from apps.object_detection.anchor_fit import (FIT_BELOW, anchor_grid, aspect_clusters, best_iou, choose_anchors,
                                              coverage, fit_anchors)
from apps.object_detection.app import ObjectDetection
from apps.object_detection.boxes import Anchors, BoxCoder
from apps.object_detection.config import DetectorConfig
from apps.object_detection.data_report import box_statistics
from data.boxes.pipeline import to_detection_set
from data.boxes.sources import load_coco
from tests.data.boxes.test_sources import write_coco



def _brute_best_iou(anchors, boxes):
    """Every box against every anchor."""
    a, b = anchors[None].astype(np.float64), boxes[:, None].astype(np.float64)
    inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
             * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None))
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    return (inter / (area(a) + area(b) - inter)).max(axis=1)


def _boxes(rng, n, size, sides, aspects):
    """n boxes inside a size x size canvas, sides (sqrt(h*w)) and aspect ratios (h/w) log-uniform in the ranges."""
    side, aspect = (np.exp(rng.uniform(*np.log(r), n)) for r in (sides, aspects))
    h, w = np.minimum(side * np.sqrt(aspect), size), np.minimum(side / np.sqrt(aspect), size)
    y0, x0 = rng.uniform(0, size - h), rng.uniform(0, size - w)
    return np.stack([y0, x0, y0 + h, x0 + w], -1)


@pytest.mark.parametrize("size, structure, anchors", [
    (64, {}, Anchors(2.0, (0.5, 1.0, 2.0))),
    (100, {"model.num_scales": "2", "model.min_level": "2", "model.max_level": "6"}, Anchors(3.31, (0.37, 1.23))),
    (256, {"model.num_scales": "3"}, Anchors(7.9, (0.618, 1.0, 1.7))),
    (513, {"model.num_scales": "4", "model.max_level": "7"}, Anchors(1.09, (1.0,))),
])
def test_the_searchs_numpy_anchors_equal_keras_hubs(size, structure, anchors):
    m = apply_overrides(ObjectDetection.Config(), structure).model
    coder = BoxCoder.from_config(size, m, anchors)
    grid = anchor_grid(size, m, anchors)
    assert list(grid.levels) == list(coder.levels) and grid.anchors_per_cell == coder.anchors_per_cell
    for level in coder.levels:
        np.testing.assert_array_equal(grid.levels[level], coder.levels[level])


@pytest.mark.parametrize("coder", [BoxCoder(64, 3, 5, 1, [1.0], 4.0), BoxCoder(128),
                                   BoxCoder(100, 3, 5, 2, [0.3, 1.7], 3.3, positive_iou=0.6)],
                         ids=["one-per-cell", "default", "odd-size-and-ratios"])
def test_coverage_is_the_brute_force_best_iou(coder):
    rng = np.random.default_rng(1)  # boxes on a 100-pixel canvas: some lie past the end of a 64-pixel grid
    boxes = np.concatenate([_boxes(rng, 300, 100, (3, 100), (0.2, 5)), coder.anchors[[0, 7, 40]]])
    expected = _brute_best_iou(coder.anchors, boxes)
    np.testing.assert_allclose(best_iou(coder, boxes), expected, atol=1e-9)
    cover = coverage(coder, boxes)
    assert cover.share == pytest.approx(np.mean(expected >= coder.positive_iou))
    assert cover.mean_iou == pytest.approx(expected.mean())
    assert 0 < cover.share < 1  # both sides of positive_iou are exercised


def test_coverage_of_hand_made_boxes():
    coder = BoxCoder(64, 3, 5, 1, [1.0], 4.0)  # squares of 32 px on the stride-8 grid, 64 px on 16, 128 px on 32
    boxes = np.array([[0, 0, 32, 32], [8, 8, 40, 40], [4, 4, 36, 36], [2, 2, 6, 6]], np.float64)
    best = best_iou(coder, boxes)
    # an anchor; another one; 4 px off the grid (28 x 28 overlap); inside one
    np.testing.assert_allclose(best, [1.0, 1.0, 28 ** 2 / (2 * 32 ** 2 - 28 ** 2), 16 / 32 ** 2])
    assert coverage(coder, boxes).share == pytest.approx(3 / 4)


def test_aspect_clusters_find_the_box_shapes():
    rng = np.random.default_rng(0)
    boxes = np.concatenate([_boxes(rng, 200, 256, (20, 60), (a * 0.95, a * 1.05)) for a in (0.25, 1.0, 4.0)])
    np.testing.assert_allclose(aspect_clusters(boxes, 3), [0.25, 1.0, 4.0], rtol=0.05)


@pytest.mark.parametrize("kind", ["tall-thin", "large"])
def test_fitting_raises_the_coverage_of_boxes_unlike_the_anchors(kind):
    rng = np.random.default_rng(0)
    size, boxes = {"tall-thin": (128, _boxes(rng, 300, 128, (16, 40), (3, 5))),
                   "large": (256, _boxes(rng, 300, 256, (140, 250), (0.8, 1.25)))}[kind]
    m = DetectorConfig()
    choice = choose_anchors(boxes, size, m)
    assert choice.fitted and choice.before.share < FIT_BELOW
    assert choice.after.share >= choice.before.share + 0.2 and choice.after.share > 0.9, choice.message()
    fitted = BoxCoder.from_config(size, m, choice.anchors)
    configured = BoxCoder.from_config(size, m)
    assert fitted.anchors.shape == configured.anchors.shape and fitted.anchors_per_cell == configured.anchors_per_cell
    brute = _brute_best_iou(fitted.anchors, boxes)  # the printed coverage is that of the anchors the coder makes
    assert choice.after.share == pytest.approx(np.mean(brute >= m.positive_iou))
    if kind == "tall-thin":
        assert min(choice.anchors.ratios) > 2  # height/width
    else:
        assert choice.anchors.size > 2 * m.anchor_size
    line = choice.message()
    assert line.startswith(f"anchors: coverage {choice.before.share:.2f} -> {choice.after.share:.2f}")
    assert f"anchor_size 2 -> {choice.anchors.size:g}, aspect_ratios 0.5,1,2 -> " in line


def test_good_anchors_are_left_alone():
    m = DetectorConfig()
    coder = BoxCoder.from_config(128, m)
    inside = coder.anchors[(coder.anchors[:, :2] >= 0).all(1) & (coder.anchors[:, 2:] <= 128).all(1)]
    choice = choose_anchors(inside, 128, m)  # boxes that are anchors: coverage 1
    assert not choice.fitted and choice.anchors == Anchors.configured(m) and choice.before.share == 1.0
    assert choice.message() == ("anchors: as configured (anchor_size 2, aspect_ratios 0.5,1,2): coverage 1.00, "
                                "kept (at least 0.95)")


def test_anchors_are_kept_when_asked_or_when_fitting_gains_nothing():
    rng = np.random.default_rng(0)
    tall = _boxes(rng, 200, 128, (16, 40), (3, 5))
    choice = choose_anchors(tall, 128, DetectorConfig(anchors="config"))
    assert not choice.fitted and choice.before.share < FIT_BELOW and "--model.anchors config" in choice.message()
    # 4-pixel boxes midway between the grid points of every level: no anchor of any size can reach IoU 0.5
    g = np.arange(4, 128, 8.0)
    cy, cx = (a.ravel() for a in np.meshgrid(g, g))
    choice = choose_anchors(np.stack([cy - 2, cx - 2, cy + 2, cx + 2], -1), 128, DetectorConfig())
    assert not choice.fitted and choice.before.share == 0 and "less than 0.01 more" in choice.message()


def test_fitting_is_deterministic():
    boxes = _boxes(np.random.default_rng(3), 200, 128, (16, 40), (3, 5))
    assert fit_anchors(boxes, 128, DetectorConfig(), seed=0) == fit_anchors(boxes.copy(), 128, DetectorConfig(), seed=0)


def _smoke_config(tmp_path, *extra):
    flags = ObjectDetection.smoke_example(tmp_path).train_flags + list(extra)
    pairs = dict(zip((f[2:] for f in flags[::2]), flags[1::2]))
    return apply_overrides(ObjectDetection.Config(), pairs), flags


def test_data_report_is_printed_and_drawn(tmp_path, capsys):
    """The smoke run's 64 scenes on a 64-pixel canvas: digits of 13..29 px that the default anchors (16 px and
    up, on a stride-8 grid) cover poorly, so the run fits its anchors."""
    cfg, _ = _smoke_config(tmp_path)
    app = ObjectDetection(cfg, tmp_path / "run")
    app.build_dataset("train")
    state = app.state()
    out = capsys.readouterr().out
    train = app.splits["train"]
    boxes = np.concatenate(train.canvas_boxes())
    before = _brute_best_iou(BoxCoder.from_config(64, cfg.model).anchors, boxes)
    record = state["anchors"]
    fitted = Anchors(record["anchor_size"], tuple(record["aspect_ratios"]))
    after = _brute_best_iou(BoxCoder.from_config(64, cfg.model, fitted).anchors, boxes)
    covered_before, covered_after = np.mean(before >= 0.5), np.mean(after >= 0.5)
    assert record["fitted"] and covered_after > covered_before
    assert record["coverage"] == pytest.approx(covered_after, abs=1e-4)
    assert f"data: 64 training images, {len(boxes)} objects ({len(boxes) / 64:.2f} per image" in out
    assert "boxes in 64x64 canvas pixels: width median " in out and "height/width median " in out
    counts = np.bincount(np.concatenate(train.labels), minlength=10)
    assert f"classes: {int(np.argmax(counts))} {counts.max()}" in out
    assert (f"configured anchors (anchor_size 2, aspect_ratios 0.5,1,2): coverage {covered_before:.2f} (share of "
            f"boxes whose best anchor reaches IoU 0.5), mean best IoU {before.mean():.2f}") in out
    assert (f"anchors: coverage {covered_before:.2f} -> {covered_after:.2f} (mean best IoU {before.mean():.2f} -> "
            f"{after.mean():.2f}); anchor_size 2 -> {fitted.size:g}") in out
    picture = tmp_path / "run" / "data_report.png"
    assert f"data report drawn to {picture}" in out
    assert Image.open(picture).size == (1600, 720)


def test_crowd_regions_are_left_out_of_the_data_report_and_the_anchors(tmp_path, capsys):
    """A COCO iscrowd box is no training target (DetectionSet.targets): the data report counts, and the anchors are
    fitted to and checked on, the training targets alone."""
    ann, img = write_coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]},
                                     {"id": 2, "image_id": 1, "category_id": 7, "bbox": [0, 0, 50, 30], "iscrowd": 1}])
    coco = to_detection_set(load_coco(ann, img)[0], ["cat", "dog"], 64)
    stats = box_statistics(coco)
    assert stats.per_image.tolist() == [1] and stats.labels.tolist() == [1]  # the dog; the crowd of cats is gone
    np.testing.assert_allclose(stats.boxes, coco.canvas_boxes()[0][:1])
    cfg, _ = _smoke_config(tmp_path, "--model.anchors", "config")
    app = ObjectDetection(cfg, tmp_path / "run")
    app._splits = {"train": coco, "val": coco}  # as RecordedSplits reads them
    app._choose_anchors()
    out = capsys.readouterr().out
    assert "data: 1 training images, 1 objects" in out and "classes: dog 1, cat 0" in out
    assert "validation boxes (1): coverage" in out


def test_runs_recorded_before_anchors_use_the_configured_ones(tmp_path, capsys):
    """A state without anchors (runs from before they were recorded) means the configured anchors, for
    evaluate/predict/export (load_state) and for a resumed training alike, even where a new run would fit."""
    cfg, _ = _smoke_config(tmp_path)
    configured = BoxCoder.from_config(64, cfg.model).anchors
    app = ObjectDetection(cfg, tmp_path / "run")
    app.load_state({"class_names": ["a", "b"], "image_size": 64})
    np.testing.assert_array_equal(app.coder.anchors, configured)
    app = ObjectDetection(cfg, tmp_path / "old")
    app.resume_state({"class_names": [str(i) for i in range(10)], "image_size": 64})  # the runner, resuming
    app.build_dataset("train")
    np.testing.assert_array_equal(app.coder.anchors, configured)
    assert not app.state()["anchors"]["fitted"] and not (tmp_path / "old" / "data_report.png").exists()
    assert "anchors: coverage" not in capsys.readouterr().out  # not fitted


def test_recorded_anchors_are_used_by_load_state_and_serving(tmp_path):
    cfg, _ = _smoke_config(tmp_path)
    app = ObjectDetection(cfg, tmp_path / "run")
    record = {"anchor_size": 1.3, "aspect_ratios": [1.2, 1.5, 3.1], "fitted": True, "coverage": 0.7,
              "configured": {"anchors": "fit", "anchor_size": 2.0, "aspect_ratios": [0.5, 1.0, 2.0]}}
    app.load_state({"class_names": ["a", "b"], "image_size": 64, "anchors": record})
    expected = BoxCoder(64, 3, 5, 3, [1.2, 1.5, 3.1], 1.3).anchors
    np.testing.assert_array_equal(app.coder.anchors, expected)
    np.testing.assert_array_equal(app.serving_model(None).coder.anchors, expected)
