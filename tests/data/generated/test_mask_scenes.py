"""Generated segmentation scenes: deterministic, exact masks, test scenes from test images only."""
import numpy as np
import pytest

import data.generated.mask_scenes as mask_scenes
from data import DataError
from data.generated.mask_scenes import make_mask_scenes
from data.images.sources import ImageSet


def test_scenes_are_deterministic_with_their_class_ids():
    a, b = make_mask_scenes(6, seed=3, size=64), make_mask_scenes(6, seed=3, size=64)
    for x, y in zip(a.images + a.masks, b.images + b.masks):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.images[0], make_mask_scenes(6, seed=4, size=64).images[0])
    assert a.class_names == ["background", "clothing", "trouser", "footwear", "bag"] and a.files is None
    assert a.images[0].shape == (64, 64, 3) and a.images[0].dtype == np.uint8 and a.masks[0].dtype == np.uint8
    ids = np.concatenate([m.ravel() for m in a.masks])
    assert ids.max() <= 4 and 0.05 < (ids > 0).mean() < 0.6
    digits = make_mask_scenes(4, seed=0, size=64, objects="mnist")
    assert digits.class_names == ["background"] + [str(i) for i in range(10)]
    assert max(int(m.max()) for m in digits.masks) <= 10
    with pytest.raises(DataError, match="unknown scene objects 'cars'"):
        make_mask_scenes(1, 0, objects="cars")


def _squares(value, labels):
    images = np.zeros((len(labels), 28, 28, 1), np.uint8)
    images[:, 4:24, 4:24] = value
    return ImageSet(images, np.asarray(labels, np.int32), [str(i) for i in range(10)])


def test_masks_are_exactly_the_pixels_objects_paint(monkeypatch):
    """Two renders with the same draws and objects of another brightness differ exactly where an object is
    visible: the mask marks those pixels and no others, occlusions included."""
    labels = [0, 1, 5, 8]  # clothing, trouser, footwear, bag
    renders = []
    for value in (255, 128):
        monkeypatch.setattr(mask_scenes, "load_embedded", lambda name, v=value: {"train": _squares(v, labels), "test": _squares(v, labels)})
        renders.append(make_mask_scenes(12, seed=5, size=64, clutter=0, min_objects=3, max_objects=5))
    bright, dim = renders
    several = 0
    for x1, x2, m1, m2 in zip(bright.images, dim.images, bright.masks, dim.masks):
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal((x1 != x2).any(-1), m1 > 0)
        several += len(np.unique(m1)) > 2  # scenes with objects of two or more classes
    assert several and set(np.unique(np.concatenate(bright.masks))) == {0, 1, 2, 3, 4}


def test_test_scenes_use_test_images_only(monkeypatch):
    empty = ImageSet(np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4, np.int32), [str(i) for i in range(10)])
    monkeypatch.setattr(mask_scenes, "load_embedded", lambda name: {"train": _squares(255, [0, 1, 5, 8]), "test": empty})
    assert all(not m.any() for m in make_mask_scenes(4, seed=0, size=64, split="test").masks)
    assert all(m.any() for m in make_mask_scenes(4, seed=0, size=64, split="train").masks)
