"""BahdanauAttention and LuongAttention: shapes, masked keys against NumPy and hand-worked values, rows
without keys, one-position steps from projected keys, central-difference gradients, the stock Keras
additive attention, serialisation."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from layers.attention import BahdanauAttention, LuongAttention

B, TQ, TK, D, DV, UNITS = 2, 3, 5, 4, 6, 7
KINDS = ["bahdanau", "luong_general", "luong_dot"]
MASK = np.array([[True] * TK, [True, True, True, False, False]])  # the second source has two padding keys


def _make(kind, tq=TQ, dtype="float32", seed=0):
    """A fresh layer of `kind`, queries [B, tq, its query width] and values [B, TK, DV]."""
    keras.utils.set_random_seed(seed)
    if kind == "bahdanau":
        layer, width = BahdanauAttention(UNITS, dtype=dtype), D
    elif kind == "luong_general":
        layer, width = LuongAttention(D, "general", dtype=dtype), D
    else:
        layer, width = LuongAttention(score="dot", dtype=dtype), DV
    rng = np.random.default_rng(seed)
    return layer, rng.normal(size=(B, tq, width)).astype(dtype), rng.normal(size=(B, TK, DV)).astype(dtype)


def _numpy_attention(layer, query, values, mask):
    """The layer's formula in float64 NumPy on its own weights: (context, weights)."""
    query, values = query.astype("float64"), values.astype("float64")
    if isinstance(layer, BahdanauAttention):
        w1, w2, v = (dense.kernel.numpy().astype("float64") for dense in
                     (layer.query_dense, layer.key_dense, layer.score_dense))
        scores = np.tanh((query @ w1)[:, :, None, :] + (values @ w2)[:, None, :, :]) @ v[:, 0]  # v^T tanh(W1 q + W2 k)
    elif layer.score == "general":
        scores = query @ (values @ layer.key_dense.kernel.numpy().astype("float64")).transpose(0, 2, 1)  # q^T W_a k
    else:
        scores = query @ values.transpose(0, 2, 1)  # q^T k
    scores = np.where(mask[:, None, :], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ values, weights


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tq", [1, TQ])  # one decoding step; teacher forcing
def test_shapes_and_weights(kind, tq):
    layer, query, values = _make(kind, tq)
    context, weights = layer(query, values, mask=MASK)
    assert tuple(context.shape) == (B, tq, DV) and tuple(weights.shape) == (B, tq, TK)
    assert layer.compute_output_shape(query.shape, values.shape) == ((B, tq, DV), (B, tq, TK))
    expected = {"bahdanau": [(D, UNITS), (DV, UNITS), (UNITS, 1)], "luong_general": [(DV, D)], "luong_dot": []}[kind]
    assert [tuple(w.shape) for w in layer.trainable_weights] == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("masked", [True, False])
def test_against_numpy(kind, masked):
    layer, query, values = _make(kind)
    context, weights = (np.asarray(t) for t in layer(query, values, mask=MASK if masked else None))
    expected_context, expected_weights = _numpy_attention(layer, query, values, MASK if masked else np.ones_like(MASK))
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(context, expected_context, atol=1e-5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    if masked:
        assert (weights[1, :, 3:] == 0.0).all()  # exactly zero on the padding keys
        assert (weights[1, :, :3] > 0.0).all()
    else:
        assert (weights > 0.0).all()


def test_bahdanau_known_value():
    """W1 = W2 = 1, v = 2: scores 2 tanh(0.5 + 0.5) = 1.5232 and 2 tanh(0.5 - 0.5) = 0, the key 3.0 masked;
    weights sigmoid(1.5232) = 0.8210 and 0.1790; context 0.5 * 0.8210 - 0.5 * 0.1790 = 0.3210."""
    layer = BahdanauAttention(1)
    query, values = np.array([[[0.5]]], "float32"), np.array([[[0.5], [-0.5], [3.0]]], "float32")
    mask = np.array([[1, 1, 0]])  # ints work as well as booleans
    layer(query, values, mask=mask)  # build
    for dense, value in ((layer.query_dense, 1.0), (layer.key_dense, 1.0), (layer.score_dense, 2.0)):
        dense.kernel.assign(np.array([[value]], "float32"))
    context, weights = (np.asarray(t) for t in layer(query, values, mask=mask))
    np.testing.assert_allclose(weights[0, 0], [0.821007, 0.178993, 0.0], atol=1e-5)
    np.testing.assert_allclose(context[0, 0], [0.321007], atol=1e-5)


@pytest.mark.parametrize("score", ["dot", "general"])
def test_luong_known_value(score):
    """q = (1, 0) against keys (1, 0), (0, 1) and a masked (5, 5): scores 1 and 0 (W_a = I for general),
    weights e / (e + 1) = 0.7311 and 0.2689, context (0.7311, 0.2689)."""
    layer = LuongAttention(2, score)
    query, values = np.array([[[1.0, 0.0]]], "float32"), np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]], "float32")
    mask = np.array([[True, True, False]])
    layer(query, values, mask=mask)  # build
    if score == "general":
        layer.key_dense.kernel.assign(np.eye(2, dtype="float32"))
    context, weights = (np.asarray(t) for t in layer(query, values, mask=mask))
    np.testing.assert_allclose(weights[0, 0], [0.731059, 0.268941, 0.0], atol=1e-5)
    np.testing.assert_allclose(context[0, 0], [0.731059, 0.268941], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_without_keys_gives_zeros_not_nan(kind):
    layer, query, values = _make(kind)
    mask = np.array([[True] * TK, [False] * TK])
    q = tf.constant(query)
    with tf.GradientTape() as tape:
        tape.watch(q)
        context, weights = layer(q, values, mask=mask)
        loss = tf.reduce_sum(context ** 2)
    context, weights, grad = np.asarray(context), np.asarray(weights), np.asarray(tape.gradient(loss, q))
    assert np.isfinite(context).all() and np.isfinite(weights).all() and np.isfinite(grad).all()
    np.testing.assert_array_equal(weights[1], 0.0)
    np.testing.assert_array_equal(context[1], 0.0)
    np.testing.assert_allclose(weights[0].sum(-1), 1.0, atol=1e-5)  # the other sentence is untouched


@pytest.mark.parametrize("kind", KINDS)
def test_one_position_steps_from_projected_keys_equal_the_full_call(kind):
    """What a decoder does: project the keys once, then attend one query position at a time."""
    layer, query, values = _make(kind)
    full_context, full_weights = (np.asarray(t) for t in layer(query, values, mask=MASK))
    keys = layer.project_keys(values)
    assert tuple(keys.shape) == (B, TK, {"bahdanau": UNITS, "luong_general": D, "luong_dot": DV}[kind])
    for t in range(TQ):
        context, weights = layer(query[:, t:t + 1], values, projected_keys=keys, mask=MASK[:, None, :])  # [B, 1, S] too
        np.testing.assert_allclose(np.asarray(context)[:, 0], full_context[:, t], atol=1e-5)
        np.testing.assert_allclose(np.asarray(weights)[:, 0], full_weights[:, t], atol=1e-5)
    fresh = _make(kind)[0]
    fresh_keys = fresh.project_keys(values)  # before the layer is built, as a decoder's start may
    fresh(query, values, projected_keys=fresh_keys, mask=MASK)
    assert [tuple(w.shape) for w in fresh.weights] == [tuple(w.shape) for w in layer.weights]


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_against_central_differences(kind):
    """d context / d (query, values) in float64, masked keys included, against tf.test.compute_gradient's
    central differences."""
    layer, query, values = _make(kind, tq=2, dtype="float64")
    layer(query, values, mask=MASK)  # build outside the gradient tapes
    theoretical, numerical = tf.test.compute_gradient(lambda q, v: layer(q, v, mask=MASK)[0],
                                                      [tf.constant(query), tf.constant(values)], delta=1e-6)
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, atol=1e-6)
    assert np.abs(theoretical[0]).max() > 1e-3  # the query does move the context


def test_bahdanau_scores_equal_keras_additive_attention():
    """keras.layers.AdditiveAttention(use_scale=True) fed the layer's projections [W1 q, values, W2 k], its
    `scale` vector set to v, computes the same weights and context (see the module docstring)."""
    layer, query, values = _make("bahdanau")
    context, weights = layer(query, values, mask=MASK)
    projected_query, projected_keys = layer.query_dense(query), layer.project_keys(values)
    stock = keras.layers.AdditiveAttention(use_scale=True)
    stock([projected_query, values, projected_keys])  # build: `scale` has the projections' width
    stock.scale.assign(layer.score_dense.kernel.numpy()[:, 0])
    stock_context, stock_weights = stock([projected_query, values, projected_keys], mask=[None, MASK],
                                         return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(weights), np.asarray(stock_weights), atol=1e-5)
    np.testing.assert_allclose(np.asarray(context), np.asarray(stock_context), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip_and_save_reload(kind, tmp_path):
    layer, query, values = _make(kind)
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    inputs = [keras.Input((None, query.shape[-1])), keras.Input((None, DV)), keras.Input((None,), dtype="bool")]
    model = keras.Model(inputs, layer(inputs[0], inputs[1], mask=inputs[2]))
    model.save(tmp_path / "attention.keras")
    reloaded = keras.saving.load_model(tmp_path / "attention.keras", safe_mode=True)
    for got, expected in zip(reloaded([query, values, MASK]), model([query, values, MASK])):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)


def test_luong_checks_its_arguments_and_widths():
    with pytest.raises(ValueError, match="unknown Luong score 'concat'"):
        LuongAttention(4, score="concat")
    with pytest.raises(ValueError, match="needs `units`"):
        LuongAttention(score="general")
    with pytest.raises(ValueError, match="queries of that width"):
        LuongAttention(5)(np.zeros((1, 2, 4), "float32"), np.zeros((1, 3, 6), "float32"))
    with pytest.raises(ValueError, match="needs queries of the values' width 6"):
        LuongAttention(score="dot")(np.zeros((1, 2, 4), "float32"), np.zeros((1, 3, 6), "float32"))
