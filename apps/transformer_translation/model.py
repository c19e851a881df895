"""The encoder-decoder Transformer (Vaswani et al. 2017) with cached one-position decoding.

Token embeddings are scaled by sqrt(d) and summed with sinusoidal position encodings; the encoder is
a stack of keras-hub TransformerEncoder blocks (padding mask), the decoder a stack of
TransformerDecoderBlock (look-ahead and padding masks, cross-attention with cache); the output layer
may share the target embedding matrix (tie_embeddings).

    model = Transformer(source_vocab=4000, target_vocab=4000)
    logits = model((source_ids, target_in))               # teacher forcing, [B, T, target_vocab]
    state = model.start_decoding(source_ids, max_length=40)
    log_probs, state, weights = model.decode_step(tokens, index, state)
"""
import math

import keras
import keras_hub
from keras import ops

from layers.attention.masks import cross_mask, decoder_self_mask, padding_mask
from layers.transformer_decoder_block import TransformerDecoderBlock


@keras.saving.register_keras_serializable(package="suite")
class Transformer(keras.Model):
    def __init__(self, source_vocab, target_vocab, hidden_dim=256, encoder_layers=3, decoder_layers=3, num_heads=4,
                 intermediate_dim=1024, dropout=0.1, tie_embeddings=True, normalize_first=False, **kwargs):
        # A fixed name (the one a fresh process gives): an automatic one is numbered per process (transformer_1),
        # and checkpoint keys hold it
        super().__init__(**{"name": "transformer", **kwargs})
        self.settings = dict(source_vocab=source_vocab, target_vocab=target_vocab, hidden_dim=hidden_dim,
                             encoder_layers=encoder_layers, decoder_layers=decoder_layers, num_heads=num_heads,
                             intermediate_dim=intermediate_dim, dropout=dropout, tie_embeddings=tie_embeddings,
                             normalize_first=normalize_first)
        self.hidden_dim, self.num_heads = hidden_dim, num_heads
        init = keras.initializers.RandomNormal(stddev=hidden_dim ** -0.5)  # unit variance after the sqrt(d) scale
        self.source_embedding = keras.layers.Embedding(source_vocab, hidden_dim, embeddings_initializer=init, name="source_embedding")
        self.target_embedding = keras_hub.layers.ReversibleEmbedding(
            target_vocab, hidden_dim, tie_weights=tie_embeddings, embeddings_initializer=init, name="target_embedding")
        self.position = keras_hub.layers.SinePositionEncoding(name="position")
        self.dropout = keras.layers.Dropout(dropout)
        self.encoder_blocks = [keras_hub.layers.TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                                                                   normalize_first=normalize_first, name=f"encoder_{i}")
                               for i in range(encoder_layers)]
        self.decoder_blocks = [TransformerDecoderBlock(num_heads, intermediate_dim, dropout=dropout,
                                                       normalize_first=normalize_first, name=f"decoder_{i}")
                               for i in range(decoder_layers)]
        # pre-norm stacks end with a norm of their own (post-norm blocks already end normalised)
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm") if normalize_first else None
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm") if normalize_first else None

    def _embed(self, embedding, ids, start=0, training=None):
        x = embedding(ids) * math.sqrt(self.hidden_dim)
        return self.dropout(x + self.position(x, start_index=start), training=training)

    def encode(self, source_ids, training=None):
        x = self._embed(self.source_embedding, source_ids, training=training)
        mask = padding_mask(source_ids)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=mask, training=training)
        return self.encoder_norm(x) if self.encoder_norm is not None else x

    def decode(self, target_in, encoded, source_ids, training=None):
        x = self._embed(self.target_embedding, target_in, training=training)
        self_mask, source_mask = decoder_self_mask(target_in), cross_mask(target_in, source_ids)
        for block in self.decoder_blocks:
            x = block(x, encoded, self_mask, source_mask, training=training)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return self.target_embedding(x, reverse=True)

    def call(self, inputs, training=None):
        source_ids, target_in = inputs
        return self.decode(target_in, self.encode(source_ids, training), source_ids, training)

    def start_decoding(self, source_ids, max_length):
        """The decoding state of a batch of sources: cross-attention caches, source mask, empty self caches."""
        encoded = self.encode(source_ids, training=False)
        batch = ops.shape(source_ids)[0]
        empty = ops.zeros((batch, 2, max_length, self.num_heads, self.hidden_dim // self.num_heads))
        return {"cross": [block.cross_cache(encoded) for block in self.decoder_blocks],
                "self": [empty for _ in self.decoder_blocks],
                "source_mask": padding_mask(source_ids)[:, None, :]}

    def decode_step(self, tokens, index, state):
        """Log-probabilities of the next token after `tokens` [N] at position `index`; the last block's
        cross-attention weights averaged over heads [N, S]."""
        x = self._embed(self.target_embedding, tokens[:, None], start=index, training=False)
        length = ops.shape(state["self"][0])[2]
        self_mask = ops.less_equal(ops.arange(length), index)[None, None, :]
        caches = []
        for block, self_cache, cross_cache in zip(self.decoder_blocks, state["self"], state["cross"]):
            x, self_cache, weights = block.step(x, self_mask, state["source_mask"], self_cache, index, cross_cache)
            caches.append(self_cache)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        logits = self.target_embedding(x, reverse=True)[:, 0]
        new_state = {"cross": state["cross"], "self": caches, "source_mask": state["source_mask"]}
        return ops.log_softmax(logits, axis=-1), new_state, ops.mean(weights[:, :, 0, :], axis=1)

    def get_config(self):
        return {**super().get_config(), **self.settings}
