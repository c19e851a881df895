"""TransformerDecoderBlock: shapes, attention against NumPy, cached one-position steps equal the full pass."""
import keras
import numpy as np
import pytest

from data.text.subword import PAD
from layers.attention.masks import cross_mask, decoder_self_mask, padding_mask
from layers.transformer_decoder_block import TransformerDecoderBlock


def _inputs(seed=0, d=8):
    rng = np.random.default_rng(seed)
    target_ids = np.array([[2, 5, 6, 7], [2, 9, 0, 0]])
    source_ids = np.array([[4, 5, 6], [4, 0, 0]])
    x = rng.normal(size=(2, 4, d)).astype("float32")
    encoded = rng.normal(size=(2, 3, d)).astype("float32")
    return target_ids, source_ids, x, encoded


@pytest.mark.parametrize("normalize_first", [False, True])
def test_shape_and_cached_steps_equal_the_full_pass(normalize_first):
    keras.utils.set_random_seed(0)
    target_ids, source_ids, x, encoded = _inputs()
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16, dropout=0.0, normalize_first=normalize_first)
    full = np.asarray(block(x, encoded, decoder_self_mask(target_ids), cross_mask(target_ids, source_ids)))
    assert full.shape == (2, 4, 8)
    cache = np.zeros((2, 2, 4, 2, 4), "float32")
    cross = block.cross_cache(encoded)
    source_mask = padding_mask(source_ids)[:, None, :]
    for t in range(4):
        self_mask = (np.arange(4) <= t)[None, None, :]
        y, cache, weights = block.step(x[:, t:t + 1], self_mask, source_mask, cache, t, cross)
        real = target_ids[:, t] != PAD  # padding queries differ (they may see themselves) and are never used
        np.testing.assert_allclose(np.asarray(y)[real, 0], full[real, t], atol=1e-5)
        weights = np.asarray(weights)
        assert weights.shape == (2, 2, 1, 3)
        np.testing.assert_allclose(weights[1, :, 0, 1:], 0.0, atol=1e-7)  # padded source keys get no weight
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_self_attention_against_numpy():
    """softmax(Q K^T / sqrt(dk) masked) V, heads concatenated, output projection: by hand."""
    keras.utils.set_random_seed(1)
    target_ids, source_ids, x, encoded = _inputs(1)
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16, dropout=0.0)
    block(x, encoded, decoder_self_mask(target_ids), cross_mask(target_ids, source_ids))
    attention = block.self_attention
    got = np.asarray(attention(x, x, attention_mask=decoder_self_mask(target_ids)))
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in
                                              (attention._query_dense, attention._key_dense, attention._value_dense,
                                               attention._output_dense)]
    q, k, v = (np.einsum("btd,dhk->bthk", x, w) + b for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    scores = np.einsum("bthk,bshk->bhts", q, k) / np.sqrt(q.shape[-1])
    mask = np.asarray(decoder_self_mask(target_ids))[:, None]
    scores = np.where(mask, scores, -1e9)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = np.einsum("bhts,bshk->bthk", p, v)
    expected = np.einsum("bthk,hkd->btd", expected, wo) + bo
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert p[0, :, 0, 1:].max() < 1e-6  # the first position sees only itself (no look-ahead)


def test_gradients_flow_to_every_weight():
    import tensorflow as tf

    target_ids, source_ids, x, encoded = _inputs()
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16)
    with tf.GradientTape() as tape:
        y = block(x, encoded, decoder_self_mask(target_ids), cross_mask(target_ids, source_ids), training=True)
        loss = tf.reduce_sum(y ** 2)
    grads = tape.gradient(loss, block.trainable_weights)
    assert len(grads) == len(block.trainable_weights) == 26 and all(g is not None for g in grads)


def test_config_round_trip_and_bad_width():
    block = TransformerDecoderBlock(num_heads=3, intermediate_dim=16, dropout=0.2, normalize_first=True)
    assert TransformerDecoderBlock.from_config(block.get_config()).get_config() == block.get_config()
    with pytest.raises(ValueError, match="hidden size 8 is not a multiple of num_heads 3"):
        block(np.zeros((1, 2, 8), "float32"), np.zeros((1, 2, 8), "float32"), None, None)
