"""A Transformer decoder block that can decode one position at a time from cached keys and values,
and that returns its cross-attention weights (for attention plots).

keras-hub's TransformerDecoder caches too but returns no attention weights, so this block composes
keras-hub's CachedMultiHeadAttention itself: masked self-attention, cross-attention to the encoder
output, a position-wise feed-forward layer, each with dropout, a residual connection and layer norm
(after the residual as in Vaswani et al. 2017, or before each sub-layer with normalize_first).

    block = TransformerDecoderBlock(num_heads=4, intermediate_dim=1024)
    y = block(x, encoder_output, self_mask, cross_mask)                   # training: [B, T, d]
    y, self_cache, weights = block.step(x_t, self_mask_t, cross_mask_t, self_cache, index, cross_cache)
"""
import keras
import keras_hub
from keras import ops


@keras.saving.register_keras_serializable(package="suite")
class TransformerDecoderBlock(keras.layers.Layer):
    def __init__(self, num_heads, intermediate_dim, dropout=0.1, normalize_first=False, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.intermediate_dim, self.rate = num_heads, intermediate_dim, dropout
        self.normalize_first, self.epsilon = normalize_first, layer_norm_epsilon

    def build(self, input_shape):
        d = input_shape[-1]
        if d % self.num_heads:
            raise ValueError(f"hidden size {d} is not a multiple of num_heads {self.num_heads}")
        shape = (None, None, d)
        attention = dict(num_heads=self.num_heads, key_dim=d // self.num_heads, dropout=self.rate)
        self.self_attention = keras_hub.layers.CachedMultiHeadAttention(**attention, name="self_attention")
        self.self_attention.build(shape, shape)
        self.cross_attention = keras_hub.layers.CachedMultiHeadAttention(**attention, name="cross_attention")
        self.cross_attention.build(shape, shape)
        self.norms = [keras.layers.LayerNormalization(epsilon=self.epsilon, name=f"norm_{i}") for i in range(3)]
        for norm in self.norms:
            norm.build(shape)
        self.ffn_in = keras.layers.Dense(self.intermediate_dim, activation="relu", name="ffn_in")
        self.ffn_in.build(shape)
        self.ffn_out = keras.layers.Dense(d, name="ffn_out")
        self.ffn_out.build((None, None, self.intermediate_dim))
        self.dropout = keras.layers.Dropout(self.rate)

    def _sublayer(self, i, x, fn, training):
        if self.normalize_first:
            return x + self.dropout(fn(self.norms[i](x)), training=training)
        return self.norms[i](x + self.dropout(fn(x), training=training))

    def _ffn(self, x):
        return self.ffn_out(self.ffn_in(x))  # dropout on the sub-layer output only, as keras-hub's encoder does

    def call(self, x, encoder_output, self_mask, cross_mask, training=None):
        x = self._sublayer(0, x, lambda h: self.self_attention(h, h, attention_mask=self_mask, training=training), training)
        x = self._sublayer(1, x, lambda h: self.cross_attention(h, encoder_output, attention_mask=cross_mask,
                                                                training=training), training)
        return self._sublayer(2, x, lambda h: self._ffn(h), training)

    def cross_cache(self, encoder_output):
        """Keys and values of the encoder output, [B, 2, S, heads, d/heads], computed once per sentence."""
        batch, length = ops.shape(encoder_output)[0], ops.shape(encoder_output)[1]
        empty = ops.zeros((batch, 2, length, self.num_heads, ops.shape(encoder_output)[2] // self.num_heads))
        _, cache = self.cross_attention(encoder_output[:, :1], encoder_output, cache=empty, cache_update_index=0)
        return cache

    def step(self, x, self_mask, cross_mask, self_cache, index, cross_cache):
        """One decoding position: x [B, 1, d] -> (y, updated self cache, cross-attention weights [B, heads, 1, S])."""
        outputs = {}

        def attend_self(h):
            y, outputs["cache"] = self.self_attention(h, h, attention_mask=self_mask, cache=self_cache, cache_update_index=index)
            return y

        def attend_source(h):
            y, outputs["weights"], _ = self.cross_attention(h, h, attention_mask=cross_mask, cache=cross_cache,
                                                            return_attention_scores=True)
            return y

        x = self._sublayer(0, x, attend_self, False)
        x = self._sublayer(1, x, attend_source, False)
        x = self._sublayer(2, x, lambda h: self._ffn(h), False)
        return x, outputs["cache"], outputs["weights"]

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                "dropout": self.rate, "normalize_first": self.normalize_first, "layer_norm_epsilon": self.epsilon}
