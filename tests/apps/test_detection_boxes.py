"""The detector's box arithmetic: IoU, anchors, assignment, encode/decode, per-class NMS, loss, mAP."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.object_detection.boxes import BACKGROUND, IGNORE, BoxCoder, aspect_ratios
from apps.object_detection.loss import DetectionLoss
from apps.object_detection.metrics import coco_evaluate

# 64x64 canvas, one square anchor per cell: 32 px at stride 8, 64 at 16, 128 at 32 (84 anchors).
CODER = BoxCoder(64, 3, 5, 1, [1.0], 4.0)


def _iou(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)


def test_iou_known_values():
    iou = keras.utils.bounding_boxes.compute_iou(np.array([[0, 0, 10, 10.]]), np.array([[0, 5, 10, 15.], [20, 20, 30, 30.]]), "yxyx")
    np.testing.assert_allclose(np.asarray(iou), [[1 / 3, 0.0]], atol=1e-6)


def test_anchors_of_keras_hub_generator():
    a = CODER.anchors
    assert a.shape == (8 * 8 + 4 * 4 + 2 * 2, 4)
    np.testing.assert_array_equal(a[0], [-16, -16, 16, 16])  # keras-hub centres the first anchor on pixel (0, 0)
    np.testing.assert_array_equal(a[18], [0, 0, 32, 32])  # P3 cell (2, 2)
    np.testing.assert_array_equal(a[64], [-32, -32, 32, 32])  # first P4 anchor
    tall = BoxCoder(64, 3, 3, 1, [2.0], 4.0).anchors[0]
    assert tall[2] - tall[0] > tall[3] - tall[1]  # aspect ratio is height / width


def test_assignment_on_hand_made_boxes():
    boxes = np.array([[[0, 0, 32, 32], [40, 40, 46, 46], [-1, -1, -1, -1]]], np.float32)
    labels = np.array([[3, 7, -1]])
    classes = CODER.encode(boxes, labels).numpy()[0, :, 4]
    iou = np.array([[_iou(a, b) for b in boxes[0, :2]] for a in CODER.anchors])
    best = iou.max(axis=1)
    expected = np.where(best >= 0.5, 3, np.where(best >= 0.4, IGNORE, BACKGROUND))
    expected[np.argmax(iou[:, 1])] = 7  # the tiny box overlaps no anchor enough: its best anchor is forced to it
    np.testing.assert_array_equal(classes, expected)
    assert sorted(np.flatnonzero(classes == 3)) == [10, 17, 18, 19, 26] and (classes == IGNORE).sum() == 0


def test_image_without_boxes_is_all_background():
    targets = CODER.encode(-np.ones((1, 2, 4), np.float32), -np.ones((1, 2), np.int32)).numpy()
    assert (targets[..., 4] == BACKGROUND).all() and (targets[..., :4] == 0).all()


def test_encode_decode_round_trip():
    coder = BoxCoder(128)  # the app's default anchors: 3 scales x 3 aspect ratios per cell
    rng = np.random.default_rng(0)
    y0, x0 = np.array([5, 5, 60, 60, 30]) + rng.uniform(0, 8, (2, 5))
    boxes = np.stack([y0, x0, y0 + rng.uniform(10, 60, 5), x0 + rng.uniform(10, 60, 5)], axis=-1)[None].astype(np.float32)
    targets = coder.encode(boxes, np.arange(5)[None]).numpy()
    positive = targets[0, :, 4] >= 0
    decoded = coder.decode(tf.constant(targets[..., :4])).numpy()[0, positive]
    owners = targets[0, positive, 4].astype(int)
    np.testing.assert_allclose(decoded, boxes[0, owners], atol=1e-3)
    assert set(owners) == set(range(5))  # every box has at least one anchor


def _logit(p):
    return np.log(p / (1 - p))


def test_nms_is_per_class():
    scores = np.full((1, len(CODER.anchors), 2), 1e-4)
    scores[0, 18, 0], scores[0, 19, 0] = 0.9, 0.8  # anchors 18 and 19 overlap with IoU 0.6
    scores[0, 19, 1] = 0.7  # ... but 19 is also the best box of another class
    predictions = np.concatenate([np.zeros((1, len(CODER.anchors), 4)), _logit(scores)], axis=-1).astype(np.float32)
    boxes, s, classes, n = CODER.detect(tf.constant(predictions), score_threshold=0.05, iou_threshold=0.5)
    assert int(n[0]) == 2
    np.testing.assert_allclose(s[0, :2], [0.9, 0.7], atol=1e-5)
    np.testing.assert_array_equal(classes[0, :2], [0, 1])
    np.testing.assert_allclose(boxes[0, :2], CODER.anchors[[18, 19]], atol=1e-4)
    _, _, _, n = CODER.detect(tf.constant(predictions), score_threshold=0.05, iou_threshold=0.65)
    assert int(n[0]) == 3  # a looser NMS keeps the overlapping box of class 0 too


def test_loss_ignores_what_it_should():
    loss = DetectionLoss(num_classes=2)
    rng = np.random.default_rng(0)
    y_true = np.zeros((1, 4, 5), np.float32)
    y_true[0, :, 4] = [0, BACKGROUND, IGNORE, 1]
    y_true[0, 0, :4] = [0.5, -0.5, 0.1, 0.2]
    y_pred = rng.normal(size=(1, 4, 6)).astype(np.float32)
    base = float(loss(y_true, y_pred))
    changed = y_pred.copy()
    changed[0, 2] += 5.0  # the ignored anchor
    changed[0, 1, :4] += 5.0  # a background anchor's box
    assert float(loss(y_true, changed)) == pytest.approx(base, rel=1e-6)
    cls, box = loss.parts(y_true, np.concatenate([y_true[..., :4], y_pred[..., 4:]], axis=-1))
    assert float(box[0]) == pytest.approx(0.0, abs=1e-7)  # a perfect box costs nothing
    assert float(cls[0]) > 0


def test_batch_normalised_loss_divides_the_batch_sum_by_the_batch_positives():
    rng = np.random.default_rng(1)
    y_true = np.full((2, 6, 5), BACKGROUND, np.float32)
    y_true[..., :4] = rng.normal(size=(2, 6, 4))
    y_true[0, :1, 4] = 0  # a lone object: 1 positive anchor
    y_true[1, :3, 4] = [0, 1, 1]  # a crowded image: 3
    y_pred = rng.normal(size=(2, 6, 6)).astype(np.float32)
    per_image = [np.add(*[float(v) for v in part]) for part in zip(*DetectionLoss(2).parts(y_true, y_pred))]
    sums = np.array(per_image) * [1, 3]  # each image's unnormalised loss
    assert float(DetectionLoss(2)(y_true, y_pred)) == pytest.approx(np.mean(sums / [1, 3]), rel=1e-5)
    assert float(DetectionLoss(2, normalizer="batch")(y_true, y_pred)) == pytest.approx(sums.sum() / 4, rel=1e-5)
    y_true[1, :3, 4] = BACKGROUND  # a batch with one positive anchor in all: the batch's sum over 1
    sums[1] = float(sum(DetectionLoss(2).parts(y_true, y_pred))[1])  # no positives: the image's sum as it is
    assert float(DetectionLoss(2, normalizer="batch")(y_true, y_pred)) == pytest.approx(sums.sum(), rel=1e-5)
    with pytest.raises(ValueError, match="normalizer must be 'image' or 'batch'"):
        DetectionLoss(2, normalizer="anchors")


def test_map_on_a_hand_computed_example():
    truth = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 0]), np.array([False, False]))]
    # TP (exact), FP, TP with IoU 100/110: precision/recall 1/.5, .5/.5, .67/1.
    detections = [(np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31]], np.float32),
                   np.array([0.9, 0.8, 0.7]), np.array([0, 0, 0]))]
    report, _ = coco_evaluate(truth, detections, ["a", "b"], [(100, 100)])
    ap_50 = (51 * 1.0 + 50 * 2 / 3) / 101  # COCO interpolates precision at 101 recall points
    ap_95 = 51 / 101  # at IoU 0.95 the third detection misses: recall stops at 0.5
    assert report["map_50"] == pytest.approx(ap_50, abs=1e-6)
    assert report["map_50_95"] == pytest.approx((9 * ap_50 + ap_95) / 10, abs=1e-6)
    assert report["per_class"]["a"]["ap_50"] == pytest.approx(ap_50, abs=1e-6)
    assert report["per_class"]["b"] == {"ap_50": None, "ap_50_95": None}  # no object of class b


def test_map_without_detections_is_zero():
    truth = [(np.array([[0, 0, 10, 10]], np.float32), np.array([0]), np.array([False]))]
    report, ev = coco_evaluate(truth, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))], ["a"], [(50, 50)])
    assert report["map_50"] == 0.0 and ev is None


def test_bad_aspect_ratios():
    with pytest.raises(ValueError, match="model.aspect_ratios must be positive"):
        aspect_ratios("1,wide")


def _giou(a, b):
    """GIoU of yxyx boxes, in NumPy."""
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    area = lambda x: np.prod(x[..., 2:] - x[..., :2], -1)  # noqa: E731
    union = area(a) + area(b) - inter
    enclosing = np.prod(np.maximum(a[..., 2:], b[..., 2:]) - np.minimum(a[..., :2], b[..., :2]), -1)
    return inter / union - (enclosing - union) / enclosing


def test_giou_of_deltas_is_the_giou_of_the_boxes_they_encode():
    from apps.object_detection.boxes import VARIANCE
    from apps.object_detection.loss import giou_of_deltas

    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 100, (50, 3, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 60, (50, 3, 2))], -1).astype(np.float32)
    anchor, true, pred = boxes[:, 0], boxes[:, 1], boxes[:, 2]  # tall, wide and square anchors alike
    encode = lambda b: keras.utils.bounding_boxes.encode_box_to_deltas(  # noqa: E731
        anchor, b, anchor_format="yxyx", box_format="yxyx", variance=VARIANCE)
    np.testing.assert_allclose(giou_of_deltas(encode(true), encode(pred)), _giou(true, pred), rtol=1e-4, atol=1e-5)
    loss = DetectionLoss(num_classes=2, box_loss="giou")
    y_true = np.concatenate([np.asarray(encode(true))[None], np.zeros((1, 50, 1), np.float32)], -1)
    y_pred = np.concatenate([np.asarray(encode(true))[None], np.zeros((1, 50, 2), np.float32)], -1)
    np.testing.assert_allclose(loss.parts(y_true, y_pred)[1], 0.0, atol=1e-5)  # exact boxes: no box loss
