"""Word2vec training batches from a corpus id file (data/text_corpus.py), all in graph ops.

One step reads `words_per_step` ids of the file (the run's batch size), then:
- subsampling: word w is kept with probability (sqrt(f/t) + 1) * t/f, f its share of the corpus
  (the formula of word2vec.c and gensim; the paper's 1 - sqrt(t/f) is its first-order form);
- dynamic window: centre i sees the words within b_i of it, b_i uniform in 1..window, never
  across a sentence end (the kept words close ranks first, as in word2vec);
- negatives: drawn from the unigram distribution raised to `ns_exponent` (0.75), by inverse CDF.

A batch is a tuple of buckets of groups: `inputs` [G, M] word ids with `input_mask` [G, M] score against
`outputs` [G, 1 + k] (the positive word first, then k negatives) weighted by `output_weight`
(0 where a negative is the positive word, which word2vec skips). With `share_negatives` "window"
a group is a centre with its whole window: the k negatives are shared by the pairs of that window
(Ji et al. 2016, "Parallelizing word2vec in shared and distributed memory"), and this is also the
layout CBOW needs. With "pair" every (context, centre) pair is a group with negatives of its own,
exactly word2vec's skip-gram.

Epoch e's batches are stateless functions of (seed, e, step), so a resumed run sees the same data.
"""
import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from data.fields import field
from data.pipeline_options import finish

GROUPINGS = ["window", "pair"]


@dataclasses.dataclass
class TextDataConfig:
    source: str = field("sotu", "embedded State of the Union corpus, text files, or a tfds text set",
                        ["sotu", "files", "tfds"])
    path: Optional[str] = field(None, "a text file or a folder of them (source files; UTF-8, .gz allowed)")
    tfds_name: Optional[str] = field(None, "tfds text data set name (source tfds)")
    data_dir: Optional[str] = field(None, "tfds data_dir holding the prepared set (source tfds)")
    tfds_split: str = field("train", "tfds split to train on")
    text_key: str = field("text", "tfds feature holding the text")
    min_count: int = field(5, "drop words seen fewer times", min=1)
    max_vocab: int = field(0, "keep at most the N most frequent words (0: no limit)", min=0)
    sample: float = field(1e-3, "subsampling threshold t (0: off)", min=0.0, max=1.0)
    window: int = field(5, "maximum distance between a centre and a context word", min=1)
    negatives: int = field(5, "negative samples per positive (k)", min=1)
    ns_exponent: float = field(0.75, "negatives are drawn from unigram counts to this power", min=-1.0, max=1.0)
    share_negatives: str = field("window", "draw negatives per window (fast) or per pair (word2vec)", GROUPINGS)


def keep_probabilities(counts, sample):
    """word2vec's probability of keeping each occurrence of each word (1 where sample is 0)."""
    counts = np.asarray(counts, np.float64)
    if not sample:
        return np.ones(len(counts), np.float32)
    threshold = sample * counts.sum()
    return np.minimum((np.sqrt(counts / threshold) + 1) * threshold / counts, 1.0).astype(np.float32)


def negative_cdf(counts, exponent):
    """Cumulative distribution of counts**exponent, the last entry exactly 1."""
    weights = np.asarray(counts, np.float64) ** exponent
    cdf = np.cumsum(weights) / weights.sum()
    cdf[-1] = 1.0
    return cdf.astype(np.float32)


def sample_negatives(cdf, shape, seed):
    """Word ids drawn from the distribution whose CDF is `cdf` (tf float32 [V]), as int32 of `shape`."""
    u = tf.random.stateless_uniform(shape, seed)
    ids = tf.searchsorted(cdf, tf.reshape(u, [-1]), side="right", out_type=tf.int32)
    return tf.reshape(tf.minimum(ids, tf.size(cdf) - 1), shape)


def windows(ids, keep_prob, window, seed):
    """Subsample one chunk of ids (-1 = sentence end) and draw each kept word's window.

    Returns centres [N], their reach [N] (1..window), and contexts [N, 2*window] with a boolean
    mask. The slots hold the offsets -1, +1, -2, +2, ..., so a window of reach b uses only the
    first 2b slots."""
    s_keep, s_window = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    word = ids >= 0
    keep = word & (tf.random.stateless_uniform(tf.shape(ids), s_keep) < tf.gather(keep_prob, tf.maximum(ids, 0)))
    seq = tf.boolean_mask(ids, keep | ~word)
    sentence = tf.cumsum(tf.cast(seq < 0, tf.int32))
    position = tf.cast(tf.where(seq >= 0)[:, 0], tf.int32)
    centres = tf.gather(seq, position)
    reach = tf.random.stateless_uniform(tf.shape(position), s_window, minval=1, maxval=window + 1, dtype=tf.int32)
    distance = tf.range(1, window + 1)
    offsets = tf.reshape(tf.stack([-distance, distance], axis=1), [-1])
    neighbour = position[:, None] + offsets[None, :]
    inside = (neighbour >= 0) & (neighbour < tf.size(seq))
    neighbour = tf.clip_by_value(neighbour, 0, tf.maximum(tf.size(seq) - 1, 0))
    contexts = tf.gather(seq, neighbour)
    mask = (inside & (contexts >= 0) & (tf.abs(offsets)[None, :] <= reach[:, None])
            & (tf.gather(sentence, neighbour) == tf.gather(sentence, position)[:, None]))
    return centres, reach, tf.where(mask, contexts, 0), mask


def reach_buckets(window):
    """The largest reach of each bucket of windows: up to three buckets of about as many reaches."""
    return sorted({-(-window * k // 3) for k in (1, 2, 3)})


def groups(ids, keep_prob, cdf, cfg, seed):
    """One training batch from one chunk of ids: a tuple of buckets, each a dict of groups (see the
    module docstring). Windows go to buckets by reach, each only as wide as its largest window
    (about 88% of the slots used instead of 60% with window 5); pairs form one bucket."""
    s_windows, s_negatives = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    centres, reach, contexts, mask = windows(ids, keep_prob, cfg.window, s_windows)
    if cfg.share_negatives == "pair":
        centres = tf.boolean_mask(tf.broadcast_to(centres[:, None], tf.shape(contexts)), mask)
        contexts = tf.boolean_mask(contexts, mask)[:, None]
        mask = tf.ones_like(contexts, tf.bool)
    negatives = sample_negatives(cdf, [tf.size(centres), cfg.negatives], s_negatives)
    whole = {"inputs": contexts, "input_mask": tf.cast(mask, tf.float32),
             "outputs": tf.concat([centres[:, None], negatives], axis=1),
             "output_weight": tf.concat([tf.ones_like(centres[:, None], tf.float32),
                                         tf.cast(negatives != centres[:, None], tf.float32)], axis=1)}
    if cfg.share_negatives == "pair":
        return (whole,)
    tops = reach_buckets(cfg.window)
    bucket = tf.searchsorted(tf.constant(tops), reach, side="left")
    parts = {k: tf.dynamic_partition(v, bucket, len(tops)) for k, v in whole.items()}
    return tuple({k: (parts[k][b][:, :2 * top] if k.startswith("input") else parts[k][b]) for k in whole}
                 for b, top in enumerate(tops))


def chunk_count(ids_path, words_per_step):
    """Chunks of the id file: SGD steps per epoch."""
    n = tf.io.gfile.stat(str(ids_path)).length // 4
    return max(-(-n // words_per_step), 1)


def steps_per_epoch(ids_path, words_per_step, chunks_per_call=1):
    """Calls of the training step per epoch: the chunks, `chunks_per_call` at a time."""
    return -(-chunk_count(ids_path, words_per_step) // chunks_per_call)


def train_epoch(ids_path, counts, cfg, words_per_step, seed, epoch, chunks_per_call=1):
    """Epoch `epoch` of training batches, a pure function of (seed, epoch): dicts of `groups` of
    `chunks_per_call` chunks, ragged along the groups ([chunks, groups, ...]), each chunk one SGD step."""
    keep_prob = tf.constant(keep_probabilities(counts, cfg.sample))
    cdf = tf.constant(negative_cdf(counts, cfg.ns_exponent))
    record, size, path = 4 * words_per_step, tf.io.gfile.stat(str(ids_path)).length, str(ids_path)
    chunks = tf.data.FixedLengthRecordDataset(path, record, footer_bytes=size % record)
    if size % record:  # the last chunk is shorter: a record of its own
        chunks = chunks.concatenate(tf.data.FixedLengthRecordDataset(path, size % record, header_bytes=size - size % record))
    epoch = tf.cast(epoch, tf.int64)

    def batch(step, raw):
        seed_ = tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + epoch, step])
        return groups(tf.io.decode_raw(raw, tf.int32, little_endian=True), keep_prob, cdf, cfg, seed_)

    steps = steps_per_epoch(ids_path, words_per_step, chunks_per_call)
    dataset = chunks.enumerate().map(batch, num_parallel_calls=1, deterministic=True).ragged_batch(chunks_per_call)
    return finish(dataset.apply(tf.data.experimental.assert_cardinality(steps)))
