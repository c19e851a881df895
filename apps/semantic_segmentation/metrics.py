"""Segmentation scores from a confusion matrix accumulated over whole images (argmax of the logits, the
ignore label 255 left out), plus the ISBI 2012 membrane scores for two classes.

- mean IoU: over the classes present in the truth or the prediction (a class neither has is not a
  0/0 score), as keras.metrics.MeanIoU and the VOC evaluation compute it; per-class IoU and Dice
  (2 TP / (2 TP + FP + FN)); pixel accuracy.
- two classes (class 1 = foreground, e.g. the cells of the membrane set): foreground IoU; the ISBI
  pixel error, 1 - the maximal F1 of the foreground over thresholds of its probability (256 levels, as
  the challenge's 8-bit probability maps had); the adapted Rand error (Arganda-Carreras et al. 2015),
  `skimage.metrics.adapted_rand_error` between the 4-connected foreground components of the truth and
  of the prediction (truth background and ignored pixels are left out, skimage's ignore_labels=(0,);
  predicted background is one segment), averaged over the images that have foreground; and the share
  of pixels predicted foreground, which shows the "all background" collapse.

    scores = SegmentationScores(num_classes=2)
    for masks, logits in batches:
        scores.update(masks, logits)
    scores.result()  # {"mean_iou": ..., "pixel_error": ..., ...}
"""
import keras
import numpy as np
from skimage.measure import label
from skimage.metrics import adapted_rand_error

IGNORE_LABEL = 255
LEVELS = 256  # thresholds of the foreground probability for the pixel error


def confusion_matrix(truth, predicted, num_classes, ignore_label=IGNORE_LABEL):
    """[C, C] int64 counts, rows the true class, columns the predicted one; ignored pixels left out."""
    truth = np.asarray(truth).astype(np.int64).ravel()
    predicted = np.asarray(predicted).astype(np.int64).ravel()
    keep = truth != ignore_label
    truth, predicted = truth[keep], predicted[keep]
    if truth.size and (truth.min() < 0 or truth.max() >= num_classes):
        raise ValueError(f"mask ids must be 0..{num_classes - 1} or {ignore_label}; found {truth.max()}")
    return np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(cm):
    """Mean IoU, per-class IoU and Dice (None for a class absent from truth and prediction), pixel accuracy."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    dice = np.where(present, 2 * tp / np.maximum(union + tp, 1), np.nan)
    total = cm.sum()
    return {"mean_iou": float(np.nanmean(iou)) if present.any() else 0.0,
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
            "mean_dice": float(np.nanmean(dice)) if present.any() else 0.0,
            "iou": [None if np.isnan(v) else float(v) for v in iou],
            "dice": [None if np.isnan(v) else float(v) for v in dice]}


def pixel_error(foreground_hist, background_hist):
    """1 - max over thresholds t of F1(foreground), predicting foreground where level >= t; the histograms
    count truly foreground / background pixels per probability level."""
    tp = np.cumsum(foreground_hist[::-1])[::-1].astype(np.float64)  # tp[t]: foreground pixels at level >= t
    fp = np.cumsum(background_hist[::-1])[::-1].astype(np.float64)
    fn = foreground_hist.sum() - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return float(1.0 - f1.max())


def rand_error(truth, predicted, ignore_label=IGNORE_LABEL):
    """Adapted Rand error of one binary image (class 1 = foreground) on 4-connected components; None when
    the truth has no foreground."""
    truth = np.asarray(truth)
    valid = truth != ignore_label
    true_segments = label((truth == 1) & valid, connectivity=1)
    if not true_segments.any():
        return None
    test_segments = label((np.asarray(predicted) == 1) & valid, connectivity=1)
    return float(adapted_rand_error(true_segments, test_segments)[0])


class SegmentationScores:
    """Accumulates images (masks [B, H, W] or [H, W], logits [..., C]) and reports every score."""

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL):
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.confusion = np.zeros((num_classes, num_classes), np.int64)
        self.foreground_hist = np.zeros(LEVELS, np.int64)
        self.background_hist = np.zeros(LEVELS, np.int64)
        self.rand_errors = []

    def update(self, masks, logits):
        masks, logits = np.asarray(masks), np.asarray(logits, np.float32)
        if masks.ndim == 2:
            masks, logits = masks[None], logits[None]
        if logits.shape[-1] != self.num_classes or logits.shape[:-1] != masks.shape:
            raise ValueError(f"logits {logits.shape} do not fit masks {masks.shape} and {self.num_classes} classes")
        predicted = logits.argmax(-1)
        self.confusion += confusion_matrix(masks, predicted, self.num_classes, self.ignore_label)
        if self.num_classes == 2:
            valid = masks != self.ignore_label
            foreground = 1.0 / (1.0 + np.exp(np.clip(logits[..., 0] - logits[..., 1], -80, 80)))  # softmax, class 1
            levels = np.minimum((foreground * LEVELS).astype(np.int64), LEVELS - 1)
            self.foreground_hist += np.bincount(levels[valid & (masks == 1)], minlength=LEVELS)
            self.background_hist += np.bincount(levels[valid & (masks == 0)], minlength=LEVELS)
            for truth, pred in zip(masks, predicted):
                error = rand_error(truth, pred, self.ignore_label)
                if error is not None:
                    self.rand_errors.append(error)

    def result(self):
        scores = scores_from_confusion(self.confusion)
        if self.num_classes == 2:
            total = self.confusion.sum()
            scores.update(foreground_iou=scores["iou"][1] if scores["iou"][1] is not None else 0.0,
                          pixel_error=pixel_error(self.foreground_hist, self.background_hist),
                          adapted_rand_error=float(np.mean(self.rand_errors)) if self.rand_errors else None,
                          predicted_foreground=float(self.confusion[:, 1].sum() / total) if total else 0.0)
        return scores


def training_metrics(num_classes, ignore_label=IGNORE_LABEL):
    """Keras metrics for fit() logs: mean IoU from the argmax of the logits, the same definition as above."""
    return [keras.metrics.MeanIoU(num_classes, ignore_class=ignore_label, sparse_y_pred=False, name="mean_iou")]
