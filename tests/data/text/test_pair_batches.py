"""Length-bucketed batches: fixed shapes and count, every pair once per epoch, seeded order."""
import numpy as np

from data.text.subword import BOS, EOS, PAD
from data.text.pair_batches import BucketedPairs, bucket_length, within_length


def _pairs(n=300, seed=0):
    """Random pairs whose target length follows the source length (as translations do)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 28, n)
    source = [list(rng.integers(4, 50, k)) for k in lengths]
    target = [list(rng.integers(4, 50, max(1, k + rng.integers(-2, 3)))) for k in lengths]
    return source, target


def test_length_filter_and_bucket_lengths():
    assert within_length([[5] * 3, [5] * 4], [[6] * 2, [6] * 2], max_length=4) == [0]
    assert [bucket_length(n, 40) for n in (1, 8, 9, 33, 40)] == [8, 8, 16, 40, 40]


def test_every_pair_once_per_epoch_with_fixed_count():
    source, target = _pairs()
    batches = BucketedPairs(source, target, tokens_per_batch=256, max_length=32)
    seen = []
    for epoch in range(2):
        epoch_batches = list(batches.batches(seed=0, epoch=epoch))
        assert len(epoch_batches) == len(batches)
        rows = []
        for src, t_in, t_out in epoch_batches:
            length = src.shape[1]
            assert length % 8 == 0 or length == 32
            assert src.shape == t_in.shape == t_out.shape and src.shape[0] == 256 // length
            for s, ti, to in zip(src, t_in, t_out):
                if not s.any():
                    continue  # a filler row of the bucket's last batch
                s, to = list(s[s != PAD]), list(to[to != PAD])
                assert s[-1] == EOS and to[-1] == EOS and ti[0] == BOS
                assert list(ti[1:len(to)]) == to[:-1]  # target_in is target_out shifted right
                rows.append((tuple(s[:-1]), tuple(to[:-1])))
        assert sorted(rows) == sorted(zip(map(tuple, source), map(tuple, target)))
        seen.append([b[0].tolist() for b in epoch_batches])
    assert seen[0] != seen[1]  # epochs differ
    again = [b[0].tolist() for b in batches.batches(seed=0, epoch=1)]
    assert again == seen[1]  # and each epoch is a function of (seed, epoch)


def test_bucketing_cuts_padding():
    source, target = _pairs(2000)
    share = BucketedPairs(source, target, tokens_per_batch=512, max_length=32).padding_share()
    lengths = [max(len(s), len(t)) + 1 for s, t in zip(source, target)]
    unbucketed = 1 - sum(len(s) + len(t) + 2 for s, t in zip(source, target)) / (2 * 32 * len(lengths))
    assert share < unbucketed - 0.15


def test_dataset_has_known_cardinality_and_accepts_a_tensor_epoch():
    import tensorflow as tf

    source, target = _pairs(100)
    batches = BucketedPairs(source, target, tokens_per_batch=128, max_length=32)
    data = batches.dataset(seed=1, epoch=tf.constant(2, tf.int64))
    assert int(data.cardinality()) == len(batches)
    (src, t_in), t_out = next(iter(data))
    np.testing.assert_array_equal(src.numpy(), next(batches.batches(1, 2))[0])
