import numpy as np
import pytest

from layers import ImagePreprocess
from tests.layers.layer_checks import check_save_reload


def test_known_values():
    rgb = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    np.testing.assert_allclose(ImagePreprocess("caffe")(rgb)[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-5)
    np.testing.assert_allclose(ImagePreprocess("tf")(rgb)[0, 0, 0], [10 / 127.5 - 1, 20 / 127.5 - 1, 30 / 127.5 - 1], rtol=1e-5)
    np.testing.assert_allclose(ImagePreprocess("none")(rgb), rgb)
    np.testing.assert_allclose(ImagePreprocess("dlib")(rgb)[0, 0, 0],
                               [(10 - 122.782) / 256, (20 - 117.001) / 256, (30 - 104.298) / 256], rtol=1e-5)
    uint8 = np.array([[[[255, 0, 128]]]], "uint8")  # dlib's face network takes uint8 pixels as they are
    np.testing.assert_allclose(ImagePreprocess("dlib")(uint8)[0, 0, 0],
                               [(255 - 122.782) / 256, -117.001 / 256, (128 - 104.298) / 256], rtol=1e-5)
    assert ImagePreprocess("torch").trainable_weights == []


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        ImagePreprocess("bgr")


def test_save_reload(tmp_path):
    check_save_reload(ImagePreprocess("torch"), (1, 2, 2, 3), tmp_path)
    check_save_reload(ImagePreprocess("dlib"), (1, 2, 2, 3), tmp_path)
