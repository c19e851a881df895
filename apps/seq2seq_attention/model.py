"""A recurrent encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015) that decodes
through the Transformer's interface, so layers/decoding/search.py and the translation serving module
drive it unchanged.

Encoder: Embedding (mask_zero: PAD is id 0) -> `encoder_layers` Bidirectional GRU/LSTM layers of
units // 2 per direction, so the memory (the attention's values) is `units` wide, as wide as the
decoder's state: Luong's dot score (q^T k) then needs no extra projection, and the encoder costs
what a unidirectional one of `units` would. A bridge Dense(tanh) maps the top layer's final forward
and backward states to every decoder layer's initial state (h, and c for LSTM): s0 = tanh(W [h_fwd;
h_bwd]), Bahdanau's initialisation extended to both directions and to stacked decoders.

Decoder: one `_step(token_embedding, states, memory)` serves teacher forcing (`call`, a tf.scan over
time; Keras 3 RNN layers take no `constants`) and cached decoding (`decode_step`), so the two agree
by construction (tested). With `attention="bahdanau"` a step attends with the top layer's previous
hidden state and feeds [E y_{t-1}; context] to the stacked cells; with "luong_general"/"luong_dot"
it feeds [E y_{t-1}; a_{t-1}] (input feeding), runs the cells and attends with their new output.
Both then form the attentional vector a_t = tanh(W_c [h_t; context]) of width `embedding_dim` (for
Bahdanau a one-layer deep output in place of the paper's maxout) and the logits are the target
embedding matrix (tie_embeddings) or a separate [embedding_dim, V] matrix applied to dropout(a_t).
Dropout sits on the embeddings, between encoder layers and before the output matrix, outside the
recurrence.

    model = build_seq2seq(Seq2SeqConfig(units=128), vocab_size=4000)
    logits = model((source_ids, target_in))                       # [B, T, V], teacher forcing
    state = model.start_decoding(source_ids, max_length=40)
    log_probs, state, weights = model.decode_step(tokens, index, state)   # [N, V], same state, [N, S]
    maps = model.attention_weights(source_ids, target_in)         # [B, T, S], for plots
"""
import dataclasses

import keras
import tensorflow as tf
from keras import ops

from apps.core.config import field
from layers.attention import BahdanauAttention, LuongAttention
from layers.attention.masks import padding_mask

CELLS = ("gru", "lstm")
ATTENTIONS = ("bahdanau", "luong_general", "luong_dot")


@dataclasses.dataclass
class Seq2SeqConfig:
    cell: str = field("gru", "recurrent cell of encoder and decoder", CELLS)
    attention: str = field("bahdanau", "attention score: additive with the previous state (Bahdanau), or "
                           "multiplicative with the new state and input feeding (Luong general / dot)", ATTENTIONS)
    embedding_dim: int = field(256, "token embedding width, also the attentional vector's", min=1)
    units: int = field(256, "decoder state width; the bidirectional encoder has units // 2 per direction (even)", min=2)
    encoder_layers: int = field(1, "stacked bidirectional encoder layers", min=1)
    decoder_layers: int = field(1, "stacked decoder cells", min=1)
    dropout: float = field(0.1, "dropout on embeddings, between encoder layers and before the output layer",
                           min=0.0, max=1.0, max_exclusive=True)
    tie_embeddings: bool = field(False, "share the target embedding matrix with the output layer")

    def check(self, prefix=""):
        if self.units % 2:
            raise ValueError(f"config key '{prefix}units' ({self.units}) must be even: the bidirectional encoder "
                             "has units // 2 per direction")


def build_seq2seq(cfg, vocab_size, target_vocab_size=None):
    """The model of `cfg`, with its weights created; one vocabulary size, or separate source and target ones."""
    cfg.check()
    return Seq2Seq(vocab_size, target_vocab_size or vocab_size, **dataclasses.asdict(cfg))


@keras.saving.register_keras_serializable(package="suite")
class Seq2Seq(keras.Model):
    """Recurrent encoder-decoder with attention; see the module docstring. Weights exist from construction
    (every shape follows from the arguments), so a reloaded model needs no build call."""

    def __init__(self, source_vocab, target_vocab, cell="gru", attention="bahdanau", embedding_dim=256, units=256,
                 encoder_layers=1, decoder_layers=1, dropout=0.1, tie_embeddings=False, **kwargs):
        # Fixed names (those a fresh process gives): automatic ones are numbered per process (seq2_seq_1,
        # forward_gru_2), and checkpoint keys hold them
        super().__init__(**{"name": "seq2_seq", **kwargs})
        if cell not in CELLS or attention not in ATTENTIONS:
            raise ValueError(f"cell must be one of {CELLS} and attention one of {ATTENTIONS}; got {cell!r}, {attention!r}")
        if units % 2:
            raise ValueError(f"units ({units}) must be even: the bidirectional encoder has units // 2 per direction")
        self.settings = dict(source_vocab=source_vocab, target_vocab=target_vocab, cell=cell, attention=attention,
                             embedding_dim=embedding_dim, units=units, encoder_layers=encoder_layers,
                             decoder_layers=decoder_layers, dropout=dropout, tie_embeddings=tie_embeddings)
        self.units, self.embedding_dim, self.decoder_layers = units, embedding_dim, decoder_layers
        self.luong = attention != "bahdanau"
        self.kinds = 2 if cell == "lstm" else 1  # states per layer: (h, c) or h
        rnn = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        cell_class = keras.layers.LSTMCell if cell == "lstm" else keras.layers.GRUCell

        self.source_embedding = keras.layers.Embedding(source_vocab, embedding_dim, mask_zero=True, name="source_embedding")
        self.target_embedding = keras.layers.ReversibleEmbedding(target_vocab, embedding_dim, tie_weights=tie_embeddings,
                                                                 name="target_embedding")
        self.dropout = keras.layers.Dropout(dropout)
        self.encoder_rnns = [keras.layers.Bidirectional(rnn(units // 2, return_sequences=True, return_state=True,
                                                            name=cell if i == 0 else f"{cell}_{i}"),
                                                        name=f"encoder_{i}") for i in range(encoder_layers)]
        self.bridge = keras.layers.Dense(decoder_layers * self.kinds * units, activation="tanh", name="bridge")
        if attention == "bahdanau":
            self.attention = BahdanauAttention(units, name="attention")
        else:
            self.attention = LuongAttention(units, score=attention.removeprefix("luong_"), name="attention")
        self.cells = [cell_class(units, name=f"decoder_{i}") for i in range(decoder_layers)]
        self.readout = keras.layers.Dense(embedding_dim, activation="tanh", name="readout")  # a_t = tanh(W_c [h; c])
        self._build_layers(embedding_dim, units)

    def _build_layers(self, embedding_dim, units):
        with keras.name_scope(self.name):  # weights named "<model>/<layer>/...", as a lazily built model's are
            self._build_sublayers(embedding_dim, units)
        self.built = True

    def _build_sublayers(self, embedding_dim, units):
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        width = embedding_dim
        for layer in self.encoder_rnns:
            layer.build((None, None, width))
            width = units
        self.bridge.build((None, self.kinds * units))
        self.attention.build((None, 1, units), (None, None, units))
        width = embedding_dim + (embedding_dim if self.luong else units)  # [E y; a_{t-1}] or [E y; context]
        for cell in self.cells:
            cell.build((None, width))
            width = units
        self.readout.build((None, 2 * units))

    def encode(self, source_ids, training=None):
        """The decoder's memory and initial state: {"values", "keys", "mask"}, {"rnn": [B, layers, kinds, units]
        (+ "feed": [B, embedding_dim] zeros for Luong)}."""
        mask = padding_mask(source_ids)
        x = self.dropout(self.source_embedding(source_ids), training=training)
        for i, layer in enumerate(self.encoder_rnns):
            x, *final = layer(x, mask=mask, training=training)
            if i + 1 < len(self.encoder_rnns):
                x = self.dropout(x, training=training)
        rnn = ops.reshape(self.bridge(ops.concatenate(final, axis=-1)), (-1, self.decoder_layers, self.kinds, self.units))
        memory = {"values": x, "keys": self.attention.project_keys(x), "mask": mask}
        states = {"rnn": rnn}
        if self.luong:
            states["feed"] = ops.zeros((ops.shape(x)[0], self.embedding_dim), x.dtype)
        return memory, states

    def _attend(self, query, memory):
        return self.attention(query, memory["values"], projected_keys=memory["keys"], mask=memory["mask"])

    def _step(self, token_embedding, states, memory):
        """One target position: (a_t [N, embedding_dim], new states (same structure), weights [N, S])."""
        rnn = states["rnn"]
        if self.luong:
            x = ops.concatenate([token_embedding, states["feed"]], axis=-1)
        else:
            context, weights = self._attend(rnn[:, -1, 0], memory)  # query: the top layer's previous h
            x = ops.concatenate([token_embedding, context], axis=-1)
        layers = []
        for i, cell in enumerate(self.cells):
            x, new = cell(x, [rnn[:, i, k] for k in range(self.kinds)])
            layers.append(ops.stack(new, axis=1))
        new_states = {"rnn": ops.stack(layers, axis=1)}
        if self.luong:
            context, weights = self._attend(x, memory)  # query: the new top output h_t
        attentional = self.readout(ops.concatenate([x, context], axis=-1))
        if self.luong:
            new_states["feed"] = attentional
        return attentional, new_states, weights

    def _teacher_forced(self, source_ids, target_in, training=None):
        """(a [B, T, embedding_dim], weights [B, T, S]) with the true previous tokens fed at every step."""
        memory, states = self.encode(source_ids, training)
        embedded = self.dropout(self.target_embedding(target_in), training=training)

        def step(carry, token_embedding):
            states, _, _ = carry
            attentional, states, weights = self._step(token_embedding, states, memory)
            return states, attentional, weights

        batch, length = ops.shape(memory["mask"])[0], ops.shape(memory["mask"])[1]
        dtype = memory["values"].dtype
        init = (states, ops.zeros((batch, self.embedding_dim), dtype), ops.zeros((batch, length), dtype))
        # tf.scan, not keras.ops.scan: on TensorFlow the latter requires the per-step outputs to match the carry
        _, attentional, weights = tf.scan(step, ops.transpose(embedded, (1, 0, 2)), initializer=init)
        return ops.transpose(attentional, (1, 0, 2)), ops.transpose(weights, (1, 0, 2))

    def call(self, inputs, training=None):
        source_ids, target_in = inputs
        attentional, _ = self._teacher_forced(source_ids, target_in, training)
        return self.target_embedding(self.dropout(attentional, training=training), reverse=True)

    def attention_weights(self, source_ids, target_in):
        """Teacher-forced attention maps [B, T, S] float32 (zero on source padding), for plots."""
        return ops.cast(self._teacher_forced(source_ids, target_in, training=False)[1], "float32")

    def start_decoding(self, source_ids, max_length):
        """The decoding state of a batch of sources: {"rnn", ("feed"), "values", "keys", "mask"}, every leaf
        with the batch on axis 0. `max_length` is unused (a recurrent state does not grow)."""
        memory, states = self.encode(source_ids, training=False)
        return {**states, **memory}

    def decode_step(self, tokens, index, state):
        """Log-probabilities [N, V] float32 of the token after `tokens` [N], the state with the same structure,
        and this step's attention weights [N, S] float32. `index` is unused (the state carries the position)."""
        memory = {key: state[key] for key in ("values", "keys", "mask")}
        attentional, states, weights = self._step(self.target_embedding(tokens), state, memory)
        logits = ops.cast(self.target_embedding(attentional, reverse=True), "float32")
        return ops.log_softmax(logits, axis=-1), {**states, **memory}, ops.cast(weights, "float32")

    def get_config(self):
        return {**super().get_config(), **self.settings}
