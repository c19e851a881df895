"""Word2vec batches: subsampling and negative sampling checked statistically (fixed seeds, stated
tolerances), windows checked exactly on tiny sentences, and epochs reproducible."""
import numpy as np
import pytest
import tensorflow as tf

from data.skipgram_pipeline import (TextDataConfig, groups, keep_probabilities, negative_cdf, sample_negatives,
                                    steps_per_epoch, train_epoch, windows)

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
    centres, _, _ = windows(tf.constant(ids), tf.constant(keep), 2, SEED)
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
    centres, contexts, mask = windows(ids, tf.ones([5]), 1, SEED)
    pairs = {(int(c), int(x)) for c, row, ok in zip(centres, contexts.numpy(), mask.numpy()) for x, o in zip(row, ok) if o}
    assert centres.numpy().tolist() == [0, 1, 2, 3, 4]
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)}  # never 2-3 across the sentence end


def test_dynamic_window_stays_within_the_window_and_varies():
    ids = tf.range(40, dtype=tf.int32)
    centres, contexts, mask = windows(ids, tf.ones([40]), 3, SEED)
    distance = np.abs(contexts.numpy() - centres.numpy()[:, None])[mask.numpy()]
    assert distance.max() <= 3 and distance.min() >= 1
    reach = [np.abs(row[ok] - c).max() for c, row, ok in zip(centres.numpy()[3:-3], contexts.numpy()[3:-3], mask.numpy()[3:-3])]
    assert set(reach) == {1, 2, 3}  # reduced windows, each size seen


@pytest.mark.parametrize("share", ["window", "pair"])
def test_groups_layout_and_skipped_negatives(share):
    cfg = TextDataConfig(window=2, negatives=4, sample=0, share_negatives=share)
    counts = np.array([5, 4, 3, 2, 1])
    ids = tf.constant([0, 1, 2, 3, 4, 0, 1, 2, -1, 3, 4, 0], tf.int32)
    batch = groups(ids, tf.constant(keep_probabilities(counts, 0)), tf.constant(negative_cdf(counts, 0.75)), cfg, SEED)
    g = batch["outputs"].shape[0]
    assert batch["outputs"].shape == (g, 5) and batch["output_weight"].shape == (g, 5)
    assert batch["inputs"].shape == batch["input_mask"].shape
    assert batch["inputs"].shape[1] == (4 if share == "window" else 1)
    negatives, positive = batch["outputs"].numpy()[:, 1:], batch["outputs"].numpy()[:, :1]
    np.testing.assert_array_equal(batch["output_weight"].numpy()[:, 1:], (negatives != positive).astype(np.float32))
    if share == "pair":
        assert g == int(groups(ids, tf.ones([5]), tf.constant(negative_cdf(counts, 0.75)),
                               TextDataConfig(window=2, negatives=4, sample=0), SEED)["input_mask"].numpy().sum())


def test_epochs_are_reproducible_and_differ(tmp_path):
    path = tmp_path / "ids.bin"
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, 2500).astype("<i4")
    ids[::50] = -1
    ids.tofile(path)
    counts = np.bincount(ids[ids >= 0], minlength=20)
    cfg = TextDataConfig()
    assert steps_per_epoch(path, 1000) == 3
    first = [b["outputs"].numpy() for b in train_epoch(path, counts, cfg, 1000, seed=0, epoch=1)]
    again = [b["outputs"].numpy() for b in train_epoch(path, counts, cfg, 1000, seed=0, epoch=1)]
    other = [b["outputs"].numpy() for b in train_epoch(path, counts, cfg, 1000, seed=0, epoch=2)]
    assert len(first) == 3
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, other))
