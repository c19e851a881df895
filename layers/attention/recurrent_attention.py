"""Attention for recurrent encoder-decoders: Bahdanau's additive and Luong's multiplicative scores.

A decoder state (the query) scores every encoder state (the keys, which are also the values); the
softmax of the scores over the source weights the values into a context vector.

- BahdanauAttention(units) (Bahdanau et al. 2015, appendix A.1.2): score = v^T tanh(W1 q + W2 k),
  W1, W2 [., units] and v [units], no biases (as in the paper; a bias in v cancels in the softmax).
- LuongAttention(units, "general") (Luong et al. 2015, section 3.1): score = q^T W_a k, W_a mapping
  the keys to the query's width `units`; LuongAttention(score="dot"): score = q^T k, no weights.
  Luong's third score, "concat", is Bahdanau's form. Luong's attentional state tanh(W_c [c; h]) and
  input feeding belong to the decoder, not to this layer.

Both split the key projection from the call so that decoding pays for it once per sentence:
`project_keys(values)` gives W2 k (Bahdanau), W_a k (Luong general) or the values themselves (dot),
which a decoder keeps in its beam-search cache and passes back as `projected_keys`; a step then
costs one query position (a [B, dq] query). In teacher forcing, Tq is the target length.

    attention = BahdanauAttention(128)
    context, weights = attention(query, encoder_states, mask=source_mask)   # [B, Tq, dv], [B, Tq, S]
    keys = attention.project_keys(encoder_states)                            # once per sentence
    context, weights = attention(state, encoder_states, projected_keys=keys, mask=source_mask)  # [B, dv], [B, S]

A query without a time axis ([B, dq], a decoder step's state) gives a context [B, dv] and weights [B, S].

`mask` is True on real keys: [B, S] (data.text.subword PAD ids -> layers.attention.masks.padding_mask)
or anything that broadcasts to [B, Tq, S]. Masked keys get exactly zero weight; a row without any
real key gets zero weights and a zero context (not NaN, not an average over padding).

Why keras.layers.AdditiveAttention is not used inside (Keras 3.15 source read): its score is
sum(scale * tanh(q + k)), with `scale` a learned vector of the query's width when use_scale=True (its
docstring says scalar), so fed with [W1 q, values, W2 k] it computes the same scores (tested in
tests/layers/attention/test_recurrent_attention.py); with use_scale=False, v is fixed to ones, which is
not Bahdanau's score. It has no projections of its own (it does take the keys as a separate third
input, so a cached W2 k could be passed), so W1 and W2 would live here anyway and it would hold only
v. And it masks by subtracting 1e9 and takes the plain softmax, so a row whose keys are all masked
gets uniform weights over the padding (an average of padded encoder states) instead of zeros;
fixing that afterwards means recomputing the context. A masked softmax of our own
(`masked_softmax`, shared by both layers) is three lines and serves Luong's scores too.

The two layers share one file (the suite's rule is one class per file) because they share that
softmax, the call contract, the decoder they serve and one test file.
"""
import keras
from keras import ops

SCORES = ("general", "dot")
_NEG = -1e9  # the score of a masked key: exp underflows to exactly 0 beside any real key


def masked_softmax(scores, mask=None):
    """Softmax of scores [B, Tq, Tk] over the keys where `mask` ([B, Tk] or broadcastable to
    [B, Tq, Tk]) is True; exactly 0 elsewhere, and 0 everywhere in a row without a True. Half-precision
    scores are normalised in float32 (so -1e9 is not -inf) and returned in their own dtype."""
    dtype = keras.backend.standardize_dtype(scores.dtype)
    if dtype in ("float16", "bfloat16"):
        scores = ops.cast(scores, "float32")
    if mask is None:
        return ops.cast(ops.softmax(scores, axis=-1), dtype)
    mask = ops.cast(mask, "bool")
    if len(mask.shape) == 2:
        mask = ops.expand_dims(mask, 1)
    weights = ops.softmax(ops.where(mask, scores, _NEG), axis=-1)
    # a fully masked row is uniform here; where() zeroes it (and the padded keys' exp(-1e9) zeros stay 0)
    return ops.cast(ops.where(mask, weights, 0.0), dtype)


class _RecurrentAttention(keras.layers.Layer):
    """What both scores share: the call contract, the masked softmax and the weighted sum."""

    def project_keys(self, values):
        raise NotImplementedError

    def _scores(self, query, keys):
        raise NotImplementedError

    def call(self, query, values, projected_keys=None, mask=None):
        keys = self.project_keys(values) if projected_keys is None else projected_keys
        weights = masked_softmax(self._scores(query, keys), mask)
        context = ops.matmul(ops.cast(weights, values.dtype), values)
        if len(query.shape) == 2:  # one query per row: [B, dv], [B, S]
            return context[:, 0], weights[:, 0]
        return context, weights

    def compute_mask(self, query, previous_mask=None):
        # the key mask passed as `mask` is not a mask of the outputs (Keras would attach it to them)
        return None

    def compute_output_shape(self, query_shape, values_shape):
        rows = tuple(query_shape[:-1])
        return (*rows, values_shape[-1]), (*rows, values_shape[1])


def _as_rows(query):
    """A query [B, dq] as [B, 1, dq]; [B, Tq, dq] unchanged."""
    return ops.expand_dims(query, 1) if len(query.shape) == 2 else query


@keras.saving.register_keras_serializable(package="suite")
class BahdanauAttention(_RecurrentAttention):
    """(query [B, Tq, dq] or [B, dq], values [B, S, dv]) -> (context [B, Tq, dv], weights [B, Tq, S]; without
    Tq, [B, dv] and [B, S]) with additive scores v^T tanh(W1 q + W2 k) of width `units`. Memory grows as B * Tq * S * units.

    >>> context, weights = BahdanauAttention(8)(keras.ops.ones((2, 1, 4)), keras.ops.ones((2, 5, 6)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 1, 6), (2, 1, 5))
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        dense = dict(use_bias=False, dtype=self.dtype_policy)
        self.query_dense = keras.layers.Dense(self.units, name="query", **dense)  # W1
        self.key_dense = keras.layers.Dense(self.units, name="key", **dense)  # W2
        self.score_dense = keras.layers.Dense(1, name="score", **dense)  # v

    def build(self, query_shape, values_shape):
        self.query_dense.build(query_shape)
        if not self.key_dense.built:  # project_keys may have run first
            self.key_dense.build(values_shape)
        self.score_dense.build((None, self.units))

    def project_keys(self, values):
        """W2 k [B, S, units]: the query-independent half of the score, once per sentence."""
        return self.key_dense(values)

    def _scores(self, query, keys):
        # W1 q before adding the time axis, and v^T as a product and sum: on inputs of rank 3 and more, Dense is
        # a tensordot, whose gradient inside a decoder's time loop needs shapes XLA cannot know (jit_compile fails)
        projected = _as_rows(self.query_dense(query))
        hidden = ops.tanh(ops.expand_dims(projected, 2) + ops.expand_dims(keys, 1))  # [B, Tq, S, units]
        return ops.sum(hidden * ops.cast(self.score_dense.kernel[:, 0], hidden.dtype), axis=-1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="suite")
class LuongAttention(_RecurrentAttention):
    """(query [B, Tq, dq] or [B, dq], values [B, S, dv]) -> (context [B, Tq, dv], weights [B, Tq, S]; without
    Tq, [B, dv] and [B, S]) with multiplicative scores: "general" q^T W_a k, W_a [dv, units], where `units` must be the query's
    width dq; "dot" q^T k, no weights, where dq must equal dv (`units` optional, checked if given).

    >>> attention = LuongAttention(4, score="general")
    >>> context, weights = attention(keras.ops.ones((2, 3, 4)), keras.ops.ones((2, 5, 6)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 3, 6), (2, 3, 5))
    """

    def __init__(self, units=None, score="general", **kwargs):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"unknown Luong score {score!r}; choose one of {', '.join(SCORES)}")
        if score == "general" and units is None:
            raise ValueError("the general score needs `units`: the width of the queries (decoder states)")
        self.units = None if units is None else int(units)
        self.score = score
        self.key_dense = (keras.layers.Dense(self.units, use_bias=False, dtype=self.dtype_policy, name="key")
                          if score == "general" else None)  # W_a

    def build(self, query_shape, values_shape):
        query = query_shape[-1]
        if self.score == "general":
            if query is not None and query != self.units:
                raise ValueError(f"Luong general attention maps the keys to units={self.units} and needs queries "
                                 f"of that width; the queries have width {query}")
        else:
            width = values_shape[-1]
            for what, dim in (("queries", query), ("units", self.units)):
                if dim is not None and width is not None and dim != width:
                    raise ValueError(f"Luong dot attention needs {what} of the values' width {width}; got {dim}")
        if self.key_dense is not None and not self.key_dense.built:  # project_keys may have run first
            self.key_dense.build(values_shape)

    def project_keys(self, values):
        """W_a k [B, S, units] for "general"; the values themselves for "dot"."""
        if self.key_dense is None:
            return ops.cast(values, self.compute_dtype)
        return self.key_dense(values)

    def _scores(self, query, keys):
        return ops.matmul(_as_rows(query), ops.swapaxes(keys, -1, -2))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "score": self.score}
