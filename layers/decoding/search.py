"""Greedy and beam search over any step function, in graph ops (they run inside exported SavedModels).

The step-function contract, all a decoder must provide (a Transformer with key/value caches and a
recurrent decoder with attention fit it alike):

    log_probs, state, weights = step(tokens, index, state)

- `tokens` [N] int32: the previous token of each of the N = batch * beam rows (BOS at index 0);
  `index`: the position being decoded, a scalar int32 tensor (0, 1, ...), for models that need it.
- `state`: any nested structure (tf.nest: dicts, lists, tuples) of tensors, each with the N rows on
  axis 0, e.g. {"self": [caches], "cross": [caches]} or (h, c). The search repeats every leaf `beam`
  times along axis 0 at the start and gathers rows along axis 0 as hypotheses are reordered; it
  never looks inside. The returned state has the structure, dtypes and shapes of the one passed in
  (a tf.while_loop variable), so caches that grow are allocated at full length up front.
- `log_probs` [N, V] float32: log-probabilities of the next token; `weights` [N, width] float32: a
  per-step vector kept beside each hypothesis (attention over the width source positions, for
  plots; a model without attention may return zeros [N, 1] with width 1).

Both searches stop when every hypothesis has ended with `eos` or after `max_length` steps (the
length guard); positions after a hypothesis's end hold `pad` (the subword PAD id by default).

Beam search keeps `beam` hypotheses per sentence; a finished one keeps competing for a slot with its
final score. Hypotheses are ranked by log-probability divided by the GNMT length penalty
((5 + length) / 6) ** alpha (Wu et al. 2016); alpha 0 ranks by log-probability alone, and beam 1 is
greedy search.

    state = model.start_decoding(source_ids, max_length=40)
    tokens, weights = greedy_search(model.decode_step, state, batch, width=S, bos=BOS, eos=EOS, max_length=40)
    tokens, weights = beam_search(model.decode_step, state, batch, width=S, bos=BOS, eos=EOS, max_length=40,
                                  beam=4, alpha=0.6)
"""
import tensorflow as tf

from data.text.subword import PAD

_NEG = -1e9


def _tile(state, beam):
    return tf.nest.map_structure(lambda t: tf.repeat(t, beam, axis=0), state)


def _gather(state, index):
    return tf.nest.map_structure(lambda t: tf.gather(t, index), state)


def greedy_search(step, state, batch, width, bos, eos, max_length, pad=PAD):
    """[batch, max_length] ids (pad after eos) and [batch, max_length, width] step weights."""
    return beam_search(step, state, batch, width, bos, eos, max_length, beam=1, alpha=0.0, pad=pad)


def length_penalty(length, alpha):
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def beam_search(step, state, batch, width, bos, eos, max_length, beam=4, alpha=0.6, pad=PAD):
    """The best hypothesis per sentence: ids [batch, max_length] and its step weights [batch, max_length, S]."""
    n = batch * beam
    state = _tile(state, beam)
    scores = tf.tile(tf.concat([[0.0], tf.fill([beam - 1], _NEG)], 0)[None], [batch, 1])  # [B, K]
    tokens = tf.fill([n, max_length], pad)
    finished = tf.zeros([batch, beam], tf.bool)
    lengths = tf.zeros([batch, beam], tf.int32)
    last = tf.fill([n], bos)
    weights = tf.zeros([n, max_length, width])
    offsets = tf.range(batch)[:, None] * beam

    def body(i, last, state, scores, tokens, finished, lengths, weights):
        log_probs, state, w = step(last, i, state)
        vocab = tf.shape(log_probs)[-1]
        log_probs = tf.reshape(log_probs, [batch, beam, vocab])
        ended_row = tf.where(tf.range(vocab) == pad, 0.0, _NEG)  # a finished hypothesis only extends by pad, at no cost
        log_probs = tf.where(finished[..., None], ended_row[None, None], log_probs)
        candidates = scores[..., None] + log_probs  # [B, K, V]
        new_lengths = lengths + tf.cast(~finished, tf.int32)
        ranked = candidates / length_penalty(new_lengths, alpha)[..., None]
        _, best = tf.math.top_k(tf.reshape(ranked, [batch, beam * vocab]), k=beam)
        parent, token = best // vocab, best % vocab  # [B, K]
        rows = tf.reshape(offsets + parent, [n])
        scores = tf.gather(tf.reshape(candidates, [batch, beam * vocab]), best, batch_dims=1)
        lengths = tf.gather(new_lengths, parent, batch_dims=1)
        was_finished = tf.gather(finished, parent, batch_dims=1)
        finished = was_finished | tf.equal(token, eos)
        token = tf.reshape(token, [n])
        tokens = tf.tensor_scatter_nd_update(tf.gather(tokens, rows), tf.stack([tf.range(n), tf.fill([n], i)], 1), token)
        w = tf.where(tf.reshape(was_finished, [n, 1]), 0.0, tf.gather(w, rows))
        weights = tf.tensor_scatter_nd_update(tf.gather(weights, rows), tf.stack([tf.range(n), tf.fill([n], i)], 1), w)
        return i + 1, token, _gather(state, rows), scores, tokens, finished, lengths, weights

    def more(i, last, state, scores, tokens, finished, lengths, weights):
        return (i < max_length) & ~tf.reduce_all(finished)

    _, _, _, scores, tokens, finished, lengths, weights = tf.while_loop(
        more, body, (tf.constant(0), last, state, scores, tokens, finished, lengths, weights))
    best = tf.argmax(scores / length_penalty(lengths, alpha), axis=1, output_type=tf.int32)
    rows = tf.reshape(offsets, [batch]) + best
    return tf.gather(tokens, rows), tf.gather(weights, rows)
