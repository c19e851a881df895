"""The YOLO architecture of the detection app: box assignment, loss, decoding, and the app end to end
fine-tuning YOLOv4-tiny from darknet's COCO weights."""
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.object_detection.yolo import BACKGROUND, IGNORE, YoloCoder, YoloLoss
from backbones.darknet import build_yolov4_tiny, yolov4_tiny_heads
from tests.conftest import last_line, run_main, run_ok, shared_data

APP = "object_detection"
WEIGHTS = "weights/yolov4-tiny-coco/yolov4-tiny.weights"
CODER = YoloCoder(256)  # grids 8x8 (stride 32: anchors 81x82, 135x169, 344x319) and 16x16 (23x27, 37x58, 81x82)


def _slot(head, row, col, anchor):
    grids = [8, 16]
    start = sum(g * g * 3 for g in grids[:head])
    return start + (row * grids[head] + col) * 3 + anchor


def test_head_strides_are_the_networks():
    model = build_yolov4_tiny(num_classes=2, input_size=256)
    assert [o.shape[1] for o in model.outputs] == [256 // s for _, s in yolov4_tiny_heads()] == [8, 16]
    assert CODER.num_predictions == 8 * 8 * 3 + 16 * 16 * 3


def test_a_box_goes_to_its_centre_cell_at_its_best_anchor_in_every_head_that_has_it():
    boxes = np.array([[[10, 20, 60, 90], [100, 100, 250, 240]]], np.float32)  # 70x50 (w x h), 140x150
    t = CODER.encode(boxes, np.array([[0, 1]])).numpy()[0]
    positives = np.flatnonzero(t[:, 6] >= 0)
    # 70x50 fits 81x82 best, an anchor of both heads: centre (y 35, x 55) is cell (1, 1) at stride 32 and (2, 3) at 16
    assert set(positives) == {_slot(0, 1, 1, 0), _slot(1, 2, 3, 2), _slot(0, 5, 5, 1)}
    np.testing.assert_allclose(t[_slot(0, 1, 1, 0)], [55 / 32 - 1, 35 / 32 - 1, 70 / 32, 50 / 32, 81 / 32, 82 / 32, 0])
    np.testing.assert_allclose(t[_slot(1, 2, 3, 2)], [55 / 16 - 3, 35 / 16 - 2, 70 / 16, 50 / 16, 81 / 16, 82 / 16, 0])
    # 140x150 (centre 175, 170) fits 135x169 best, at stride 32 cell (5, 5)
    np.testing.assert_allclose(t[_slot(0, 5, 5, 1)][[0, 1, 6]], [170 / 32 - 5, 175 / 32 - 5, 1])
    # elsewhere background, or ignored where a prior box overlaps a box by negative_iou (0.4) or more
    others = np.delete(t, positives, axis=0)
    assert set(others[:, 6]) == {BACKGROUND, IGNORE} and np.all(others[:, :4] == 0)
    ignored = np.flatnonzero(t[:, 6] == IGNORE)
    iou = keras.utils.bounding_boxes.compute_iou(CODER.anchors[ignored], boxes[0], "yxyx")
    assert len(ignored) and np.all(np.max(iou, axis=1) >= 0.4)


def test_padding_matches_nothing_and_two_boxes_in_one_slot_keep_one():
    boxes = np.array([[[10, 10, 50, 60], [11, 11, 51, 61], [0, 0, 0, 0]]], np.float32)
    t = CODER.encode(boxes, np.array([[0, 1, -1]])).numpy()[0]
    assert np.sum(t[:, 6] >= 0) == 1  # both claim the same stride-16 slot of anchor 37x58: one box owns it
    empty = CODER.encode(np.zeros((1, 2, 4), np.float32), np.array([[-1, -1]])).numpy()[0]
    assert np.all(empty[:, 6] == BACKGROUND)


def _logits_for(targets, classes=2, s=1.05):
    """Raw predictions that decode exactly to each positive slot's target box: confident there, nothing elsewhere."""
    xy = (targets[..., :2] + (s - 1) / 2) / s
    raw = np.zeros(targets.shape[:-1] + (5 + classes,), np.float32)
    positive = targets[..., 6] >= 0
    raw[..., :2] = np.log(xy / (1 - xy))
    raw[..., 2:4] = np.log(np.maximum(targets[..., 2:4], 1e-6) / targets[..., 4:6])
    raw[..., 4] = np.where(positive, 12.0, -12.0)
    raw[..., 5:] = -12.0
    for index in zip(*np.nonzero(positive)):
        raw[index + (5 + int(targets[index + (6,)]),)] = 12.0
    return raw


def test_encoded_boxes_decode_back_through_the_loss_and_detect():
    boxes = np.array([[[10, 20, 60, 90], [100, 100, 250, 240]], [[30, 30, 200, 120], [0, 0, 0, 0]]], np.float32)
    labels = np.array([[0, 1], [1, -1]])
    targets = CODER.encode(boxes, labels).numpy()
    raw = _logits_for(targets)
    box, obj, cls = (p.numpy() for p in YoloLoss(2).parts(tf.constant(targets), tf.constant(raw)))
    np.testing.assert_allclose(box, 0, atol=1e-5)  # CIoU 1 on every positive
    assert np.all(cls < 1e-4) and np.all(obj < 2e-3)
    found, scores, classes, n = (t.numpy() for t in CODER.detect(tf.constant(raw), 0.5, 0.5))
    assert list(n) == [2, 1]
    for i in range(2):
        order = np.argsort(classes[i, :n[i]])
        real = labels[i] >= 0
        np.testing.assert_allclose(found[i, :n[i]][order], boxes[i][real][np.argsort(labels[i][real])], atol=1e-3)


def test_the_loss_falls_as_predictions_approach_the_boxes_and_its_gradient_is_finite():
    boxes = np.array([[[10, 20, 60, 90]]], np.float32)
    targets = tf.constant(CODER.encode(boxes, np.array([[0]])).numpy())
    exact = _logits_for(targets.numpy())
    loss = YoloLoss(2)
    losses = []
    for shift in (1.0, 0.5, 0.0):
        raw = tf.Variable(exact + shift * np.random.default_rng(0).normal(size=exact.shape).astype(np.float32))
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss(targets, raw))
        assert np.all(np.isfinite(tape.gradient(value, raw).numpy()))
        losses.append(float(value))
    assert losses[0] > losses[1] > losses[2]
    # ignored predictions add no objectness loss, whatever they say
    raw = exact.copy()
    raw[0, targets.numpy()[0, :, 6] == IGNORE, 4] = 12.0
    np.testing.assert_allclose(loss.parts(targets, tf.constant(raw))[1], loss.parts(targets, tf.constant(exact))[1])


TINY = ["--data.image_size", "64", "--data.train_scenes", "32", "--data.val_scenes", "8", "--data.test_scenes", "8",
        "--epochs", "2", "--batch_size", "16", "--score_threshold", "0.001", "--draw_threshold", "0.0",
        "--verbose", "line", "--model.arch", "yolo"]


def test_yolo_fine_tunes_from_coco_evaluates_and_exports(tmp_path):
    weights = shared_data(WEIGHTS)
    run_dir = tmp_path / "run"
    proc = run_ok(APP, "train", "--run_dir", run_dir, *TINY, "--model.weights", weights, "--model.freeze_epochs", "1")
    assert "phase 'head'" in proc.stdout and "phase 'finetune'" in proc.stdout
    assert "YOLOv4-tiny's" in proc.stdout and (run_dir / "data_report.png").is_file()
    header = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"box_loss", "obj_loss", "cls_loss", "val_loss"} <= set(header)
    run_ok(APP, "evaluate", "--run_dir", run_dir)
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 8 and metrics["detections"] > 0
    run_ok(APP, "export", "--run_dir", run_dir, "--export_dir", tmp_path / "exports")
    image = tmp_path / "scene.png"
    from data.generated.scenes import make_scenes
    tf.io.write_file(str(image), tf.io.encode_png(make_scenes(1, seed=3, size=64)[0][0]))
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(tmp_path / "exports" / "1")!r}).signatures["serving_default"]
        out = serve(images=tf.constant([open({str(image)!r}, "rb").read()]))
        assert not {{"apps", "layers", "data", "backbones"}} & set(sys.modules), "the project was imported"
        print(json.dumps({{k: v.numpy().tolist() for k, v in out.items() if k != "class_names"}}))
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(last_line(proc.stdout))
    assert out["num_detections"][0] > 0 and np.array(out["boxes"]).shape == (1, 100, 4)


def test_coco_by_name_says_how_to_get_the_weights(tmp_path):
    proc = run_main(APP, "train", "--run_dir", tmp_path, *TINY, "--model.weights", "coco")
    assert proc.returncode == 2
    assert "yolov4-tiny.weights" in last_line(proc.stderr) and "--model.weights /path/to" in last_line(proc.stderr)


def test_the_loss_normalizer_is_refused_for_yolo():
    from apps.core.config import apply_overrides
    from apps.core.errors import UserError
    from apps.object_detection.config import DetectionConfig

    with pytest.raises(UserError, match="'model.loss_normalizer' applies to model.arch retinanet"):
        apply_overrides(DetectionConfig(), {"model.arch": "yolo", "model.loss_normalizer": "batch"})
