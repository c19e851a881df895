"""Word2vec batches: subsampling and negative sampling checked statistically (fixed seeds, stated
tolerances), windows checked exactly on tiny sentences, and epochs reproducible."""
import numpy as np
import pytest
import tensorflow as tf

from data.text.skipgram import (TextDataConfig, groups, keep_probabilities, negative_cdf, reach_buckets,
                                    sample_negatives, steps_per_epoch, train_epoch, windows)

SEED = tf.constant([1, 2], tf.int64)


def test_keep_probability_is_word2vecs_formula():
    counts = np.array([1000, 10, 1])  # shares 0.9891..., 0.0099, 0.00099 of 1011 words
    p = keep_probabilities(counts, sample=0.01)
    t = 0.01 * counts.sum()
    assert p[0] == pytest.approx((np.sqrt(1000 / t) + 1) * t / 1000, rel=1e-6)
    assert p[1] == 1.0 and p[2] == 1.0  # rare words are always kept
    assert keep_probabilities(counts, sample=0).tolist() == [1, 1, 1]


def test_subsampling_keeps_each_word_at_its_probability():
    counts = np.array([50_000, 20_000, 5_000, 500])
    keep = keep_probabilities(counts, sample=1e-3)
    ids = np.repeat(np.arange(4), [20_000, 20_000, 20_000, 20_000]).astype(np.int32)
    centres, _, _, _ = windows(tf.constant(ids), tf.constant(keep), 2, SEED)
    kept = np.bincount(centres.numpy(), minlength=4) / 20_000
    # binomial standard error with n = 20,000 is at most 0.0036: allow 4 of them
    np.testing.assert_allclose(kept, keep, atol=0.015)
    assert keep[0] < keep[1] < keep[2] < keep[3] < 1.0  # the more frequent, the more is dropped


def test_negatives_follow_the_unigram_distribution_to_the_three_quarters():
    counts = np.array([1000, 300, 100, 10, 1])
    expected = counts**0.75 / (counts**0.75).sum()
    cdf = tf.constant(negative_cdf(counts, 0.75))
    draws = sample_negatives(cdf, [200_000, 1], SEED).numpy().ravel()
    freq = np.bincount(draws, minlength=5) / draws.size
    # n = 200,000: standard error below 0.0012 for every word; allow 4 of them
    np.testing.assert_allclose(freq, expected, atol=0.005)
    assert draws.min() >= 0 and draws.max() <= 4


def test_window_of_one_gives_exactly_the_neighbour_pairs_within_a_sentence():
    ids = tf.constant([0, 1, 2, -1, 3, 4], tf.int32)  # two sentences: 0 1 2 | 3 4
    centres, _, contexts, mask = windows(ids, tf.ones([5]), 1, SEED)
    pairs = {(int(c), int(x)) for c, row, ok in zip(centres, contexts.numpy(), mask.numpy()) for x, o in zip(row, ok) if o}
    assert centres.numpy().tolist() == [0, 1, 2, 3, 4]
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)}  # never 2-3 across the sentence end


def test_dynamic_window_stays_within_the_window_and_varies():
    ids = tf.range(40, dtype=tf.int32)
    centres, reach, contexts, mask = windows(ids, tf.ones([40]), 3, SEED)
    distance = np.abs(contexts.numpy() - centres.numpy()[:, None])[mask.numpy()]
    assert distance.max() <= 3 and distance.min() >= 1
    used = np.flatnonzero(mask.numpy().any(axis=0))
    assert used.tolist() == list(range(6))  # slots -1, +1, -2, +2, -3, +3
    assert not (mask.numpy() & (np.arange(6)[None, :] >= 2 * reach.numpy()[:, None])).any()  # reach b: first 2b slots
    reach = [np.abs(row[ok] - c).max() for c, row, ok in zip(centres.numpy()[3:-3], contexts.numpy()[3:-3], mask.numpy()[3:-3])]
    assert set(reach) == {1, 2, 3}  # reduced windows, each size seen


def test_reach_buckets():
    assert reach_buckets(5) == [2, 4, 5] and reach_buckets(2) == [1, 2] and reach_buckets(1) == [1]


@pytest.mark.parametrize("share", ["window", "pair"])
def test_groups_layout_and_skipped_negatives(share):
    cfg = TextDataConfig(window=5, negatives=4, sample=0, share_negatives=share)
    counts = np.array([5, 4, 3, 2, 1])
    ids = tf.constant([0, 1, 2, 3, 4, 0, 1, 2, -1, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3], tf.int32)
    cdf = tf.constant(negative_cdf(counts, 0.75))
    buckets = groups(ids, tf.ones([5]), cdf, cfg, SEED)
    assert len(buckets) == (3 if share == "window" else 1)
    for bucket, width in zip(buckets, [4, 8, 10] if share == "window" else [1]):
        g = bucket["outputs"].shape[0]
        assert bucket["outputs"].shape == (g, 5) and bucket["output_weight"].shape == (g, 5)
        assert bucket["inputs"].shape == bucket["input_mask"].shape == (g, width)
        negatives, positive = bucket["outputs"].numpy()[:, 1:], bucket["outputs"].numpy()[:, :1]
        np.testing.assert_array_equal(bucket["output_weight"].numpy()[:, 1:], (negatives != positive).astype(np.float32))
    pairs = sum(int(b["input_mask"].numpy().sum()) for b in buckets)
    window_pairs = sum(int(b["input_mask"].numpy().sum()) for b in groups(ids, tf.ones([5]), cdf, TextDataConfig(
        window=5, negatives=4, sample=0), SEED))
    assert pairs == window_pairs  # the same (centre, context) pairs, grouped two ways
    if share == "window":
        assert sum(b["outputs"].shape[0] for b in buckets) == 19  # every word is a centre once


def test_epochs_are_reproducible_differ_and_group_chunks(tmp_path):
    path = tmp_path / "ids.bin"
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, 2500).astype("<i4")
    ids[::50] = -1
    ids.tofile(path)
    counts = np.bincount(ids[ids >= 0], minlength=20)
    cfg = TextDataConfig()
    assert steps_per_epoch(path, 1000) == 3 and steps_per_epoch(path, 1000, chunks_per_call=2) == 2

    def outputs(epoch, chunks_per_call=1):
        return [np.concatenate([bucket["outputs"].flat_values.numpy() for bucket in b])
                for b in train_epoch(path, counts, cfg, 1000, seed=0, epoch=epoch, chunks_per_call=chunks_per_call)]

    first = outputs(1)
    assert len(first) == 3
    assert all(np.array_equal(a, b) for a, b in zip(first, outputs(1)))
    assert not all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, outputs(2)))
    two_per_call = outputs(1, chunks_per_call=2)  # the same chunks, two per batch
    assert len(two_per_call) == 2
    rows = lambda batches: sorted(map(tuple, np.concatenate(batches)))  # noqa: E731
    assert rows(two_per_call) == rows(first)
