"""Batches of token-id pairs bucketed by length, so that a batch carries little padding.

A pair lands in the bucket of its longer side, rounded up to a multiple of 8 tokens; a bucket of
length L holds batches of `tokens_per_batch // L` rows, padded with PAD. The buckets, and so the
number of batches an epoch has, are fixed; an epoch shuffles rows within each bucket and then the
order of batches, as a pure function of (seed, epoch). The last batch of a bucket is filled with
all-padding rows, which the loss ignores. A batch is ((source, target_in), target_out) with
source = pieces + [EOS], target_in = [BOS] + pieces, target_out = pieces + [EOS].

    batches = BucketedPairs(source_ids, target_ids, tokens_per_batch=4096, max_length=40)
    batches.dataset(seed=0, epoch=3)   # a tf.data.Dataset of len(batches) batches
"""
import numpy as np
import tensorflow as tf

from data.errors import DataError
from data.text.subword import BOS, EOS, PAD

_ROUND = 8


def within_length(source_ids, target_ids, max_length):
    """Indices of pairs whose sides, with their begin/end token, fit in `max_length`."""
    return [i for i, (s, t) in enumerate(zip(source_ids, target_ids)) if len(s) + 1 <= max_length and len(t) + 1 <= max_length]


def bucket_length(length, max_length):
    return min(-(-length // _ROUND) * _ROUND, max_length)


class BucketedPairs:
    """Fixed buckets of padded id arrays; see the module docstring."""

    def __init__(self, source_ids, target_ids, tokens_per_batch, max_length):
        if not source_ids:
            raise DataError("no sentence pairs fit in --data.max_length tokens; raise it")
        by_bucket = {}
        for s, t in zip(source_ids, target_ids):
            by_bucket.setdefault(bucket_length(max(len(s), len(t)) + 1, max_length), []).append((s, t))
        self.buckets = []
        for length in sorted(by_bucket):
            pairs = by_bucket[length]
            rows = max(tokens_per_batch // length, 1)
            n = len(pairs)
            src, t_in, t_out = (np.full((n, length), PAD, np.int32) for _ in range(3))
            for i, (s, t) in enumerate(pairs):
                src[i, :len(s) + 1] = [*s, EOS]
                t_in[i, :len(t) + 1] = [BOS, *t]
                t_out[i, :len(t) + 1] = [*t, EOS]
            self.buckets.append((rows, src, t_in, t_out))
        self.pairs = len(source_ids)

    def __len__(self):
        return sum(-(-len(src) // rows) for rows, src, _, _ in self.buckets)

    def padding_share(self):
        """Share of the batch slots that hold padding (pad rows included)."""
        real = sum(int((src != PAD).sum() + (t_in != PAD).sum()) for _, src, t_in, _ in self.buckets)
        total = sum(2 * -(-len(src) // rows) * rows * src.shape[1] for rows, src, _, _ in self.buckets)
        return 1 - real / total

    def batches(self, seed, epoch, shuffle=True):
        """The epoch's batches as numpy arrays."""
        rng = np.random.default_rng([int(seed), int(epoch)])
        plan = []
        for k, (rows, src, _, _) in enumerate(self.buckets):
            order = rng.permutation(len(src)) if shuffle else np.arange(len(src))
            plan += [(k, order[i:i + rows]) for i in range(0, len(src), rows)]
        if shuffle:
            plan = [plan[i] for i in rng.permutation(len(plan))]
        for k, index in plan:
            rows, src, t_in, t_out = self.buckets[k]
            fill = rows - len(index)
            yield tuple(np.pad(a[index], ((0, fill), (0, 0)), constant_values=PAD) for a in (src, t_in, t_out))

    def dataset(self, seed, epoch, shuffle=True):
        """A tf.data.Dataset of the epoch's batches; `epoch` may be a tensor (the runner's flat_map)."""
        spec = tf.TensorSpec([None, None], tf.int32)
        data = tf.data.Dataset.from_generator(lambda s, e, sh: self.batches(s, e, sh), args=(seed, epoch, shuffle),
                                              output_signature=(spec, spec, spec))
        data = data.map(lambda src, t_in, t_out: ((src, t_in), t_out))
        return data.apply(tf.data.experimental.assert_cardinality(len(self)))
