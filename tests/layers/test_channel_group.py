import numpy as np
import pytest

from layers.channel_group import ChannelGroup
from tests.layers.layer_checks import check_output_shape, check_save_reload


def test_each_group_is_its_slice_of_the_channels():
    x = np.arange(2 * 6, dtype="float32").reshape(1, 1, 2, 6)
    np.testing.assert_array_equal(ChannelGroup(2, 1)(x).numpy()[0, 0], [[3, 4, 5], [9, 10, 11]])
    np.testing.assert_array_equal(ChannelGroup(3, 0)(x).numpy()[0, 0], [[0, 1], [6, 7]])
    check_output_shape(ChannelGroup(2, 0), (2, 5, 4, 8), (2, 5, 4, 4))


def test_bad_groups_are_refused():
    with pytest.raises(ValueError, match="group_id must be in 0..1"):
        ChannelGroup(2, 2)
    with pytest.raises(ValueError, match="divisible by 2"):
        ChannelGroup(2, 0)(np.zeros((1, 2, 2, 3), "float32"))


def test_save_reload(tmp_path):
    check_save_reload(ChannelGroup(4, 3, name="group"), (2, 3, 3, 8), tmp_path)
