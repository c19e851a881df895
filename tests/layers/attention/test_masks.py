"""Padding and look-ahead masks on hand-made inputs."""
import numpy as np

from layers.attention.masks import causal_mask, cross_mask, decoder_self_mask, padding_mask


def test_padding_mask_marks_real_tokens():
    np.testing.assert_array_equal(padding_mask(np.array([[5, 7, 0], [9, 0, 0]])), [[1, 1, 0], [1, 0, 0]])


def test_causal_mask_is_lower_triangular():
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])


def test_decoder_self_mask_combines_look_ahead_and_padding():
    mask = np.asarray(decoder_self_mask(np.array([[2, 8, 0]])))
    np.testing.assert_array_equal(mask[0], [[1, 0, 0], [1, 1, 0], [1, 1, 0]])


def test_cross_mask_lets_every_query_see_the_real_source_tokens():
    mask = np.asarray(cross_mask(np.array([[2, 8]]), np.array([[4, 5, 6, 0]])))
    np.testing.assert_array_equal(mask[0], [[1, 1, 1, 0], [1, 1, 1, 0]])
