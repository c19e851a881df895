"""--data.mosaic in the detection app: its range is checked, and both coders take the mosaics' longer box axis."""
import numpy as np
import pytest

from apps.core.config import apply_overrides
from apps.core.errors import UserError
from apps.object_detection.boxes import BoxCoder
from apps.object_detection.config import DetectionConfig
from apps.object_detection.yolo import YoloCoder
from data.boxes.pipeline import DetectionDataConfig, load_detection_splits, train_epoch


def test_mosaic_flag_is_a_probability():
    assert apply_overrides(DetectionConfig(), {"data.mosaic": "0.5"}).data.mosaic == 0.5
    for bad in ("1.5", "-0.1"):
        with pytest.raises(UserError, match="'data.mosaic' must be >= 0.0 and <= 1.0"):
            apply_overrides(DetectionConfig(), {"data.mosaic": bad})


@pytest.mark.parametrize("coder", [BoxCoder(64, 3, 5, 1, [1.0], 4.0), YoloCoder(64)], ids=["retinanet", "yolo"])
def test_mosaic_batches_encode(coder):
    cfg = DetectionDataConfig(image_size=64, train_scenes=16, mosaic=0.5)
    train = load_detection_splits(cfg, seed=0, names=("train",))["train"]
    most = train.padded()[1].shape[1]
    _, truth = next(iter(train_epoch(train, cfg, 8, seed=0, epoch=0)))
    labels = truth["labels"].numpy()
    assert most < (labels >= 0).sum(1).max() == truth["boxes"].shape[1] <= 4 * most  # some mosaic holds more
    targets = coder.encode(truth["boxes"], truth["labels"]).numpy()
    assert targets.shape[:2] == (8, coder.num_predictions) and np.isfinite(targets).all()
    positive = targets[..., -1] >= 0
    assert (positive.any(1) == (labels >= 0).any(1)).all()  # every canvas with a box has a positive slot
