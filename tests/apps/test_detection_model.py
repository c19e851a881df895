"""The detector over several backbones: one prediction per anchor, pretrained weights kept, clear errors."""
import dataclasses

import numpy as np
import pytest

from apps.core.errors import UserError
from apps.object_detection.boxes import BoxCoder
from apps.object_detection.config import DetectorConfig
from apps.object_detection.model import build_detector
from backbones.squeezenet import WEIGHTS as SQUEEZENET_WEIGHTS

SMALL = DetectorConfig(backbone="resnet", width=8, fpn_width=16, head_width=16, head_depth=1)


@pytest.mark.parametrize("backbone,levels", [("resnet", (3, 5)), ("mobilenetv2", (3, 6)), ("squeezenet", (3, 5)),
                                             ("VGG16", (3, 5))])
def test_one_prediction_per_anchor(backbone, levels):
    cfg = dataclasses.replace(SMALL, backbone=backbone, min_level=levels[0], max_level=levels[1])
    coder = BoxCoder.from_config(128, cfg)
    model = build_detector(cfg, 128, 4, coder.anchors_per_cell)
    out = model(np.zeros((2, 128, 128, 3), np.float32))
    assert out.shape == (2, len(coder.anchors), 4 + 4)
    logits = np.asarray(out[..., 4:])
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), 0.01, atol=0.005)  # the focal-loss prior at start


def test_pretrained_squeezenet_weights_are_loaded():
    import h5py

    cfg = dataclasses.replace(SMALL, backbone="squeezenet", weights="imagenet")
    model = build_detector(cfg, 128, 2, 9)
    conv1 = model.get_layer("backbone").get_layer("conv1").kernel.numpy()
    with h5py.File(SQUEEZENET_WEIGHTS) as f:
        arrays = []
        f["conv1"].visititems(lambda _, o: arrays.append(np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
    np.testing.assert_array_equal(conv1, next(a for a in arrays if a.ndim == 4))


def test_backbone_without_the_finest_level_is_a_clear_error():
    with pytest.raises(UserError, match=r"backbone resnet gives no stride-1 features \(P0\); it declares P1, P2, P3, P4"):
        build_detector(dataclasses.replace(SMALL, min_level=0), 128, 2, 9)
    with pytest.raises(UserError, match=r"backbone squeezenet gives no stride-32 features \(P5\); it declares P1, P2, P3, P4"):
        build_detector(dataclasses.replace(SMALL, backbone="squeezenet", min_level=5, max_level=6), 128, 2, 9)
