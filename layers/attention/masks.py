"""Attention masks for sequence models: True where a query may attend to a key.

Padding is the subword vocabulary's PAD id (data.text.subword), the one every sequence app pads with.

    padding_mask([[5, 7, 0]])         -> [[True, True, False]]
    causal_mask(3)                    -> lower-triangular [3, 3]
    decoder_self_mask(target_ids)     -> [B, T, T]: causal and not padding
    cross_mask(target_ids, source_ids) -> [B, T, S]: every query sees the source's non-padding keys
"""
from keras import ops

from data.text.subword import PAD


def padding_mask(ids, pad_id=PAD):
    return ops.not_equal(ids, pad_id)


def causal_mask(length):
    """[length, length]: query i may attend to keys 0..i (no look-ahead)."""
    positions = ops.arange(length)
    return ops.greater_equal(positions[:, None], positions[None, :])


def decoder_self_mask(ids, pad_id=PAD):
    length = ops.shape(ids)[1]
    return ops.logical_and(causal_mask(length)[None, :, :], padding_mask(ids, pad_id)[:, None, :])


def cross_mask(query_ids, key_ids, pad_id=PAD):
    keys = padding_mask(key_ids, pad_id)[:, None, :]
    return ops.broadcast_to(keys, (ops.shape(key_ids)[0], ops.shape(query_ids)[1], ops.shape(key_ids)[1]))
