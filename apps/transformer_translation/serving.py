"""The exported translator: a batch of source strings in, translated strings out, with normalisation,
SentencePiece tokenisation (tensorflow-text ops), beam search and detokenisation inside the graph.

A process that loads the SavedModel must `import tensorflow_text` first, which registers the
SentencePiece ops (the model needs nothing else from this project).
"""
import tensorflow as tf

from data.text.normalize import normalize_graph
from data.text.subword import BOS, EOS, GraphSubwords
from layers.decoding.search import beam_search


class TranslationServing(tf.Module):
    """`serve(sentences)` -> {"translations", "truncated"}; `attention(sentences)` adds the ids and the
    last decoder block's cross-attention weights, for plots."""

    def __init__(self, model, source_proto, target_proto, max_length, beam=4, alpha=0.6):
        super().__init__()
        self.model = model
        self.source_tokenizer = GraphSubwords(source_proto, name="source_pieces")
        self.target_tokenizer = GraphSubwords(target_proto, name="target_pieces")
        self.max_length, self.beam, self.alpha = max_length, beam, alpha

    def _translate(self, sentences):
        ids, truncated = self.source_tokenizer.encode(normalize_graph(sentences), self.max_length)
        state = self.model.start_decoding(ids, self.max_length)
        tokens, weights = beam_search(self.model.decode_step, state, tf.shape(ids)[0], tf.shape(ids)[1], BOS, EOS,
                                      self.max_length, beam=self.beam, alpha=self.alpha)
        return self.target_tokenizer.decode(tokens), truncated, ids, tokens, weights

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def serve(self, sentences):
        text, truncated, _, _, _ = self._translate(sentences)
        return {"translations": text, "truncated": truncated}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def attention(self, sentences):
        text, truncated, ids, tokens, weights = self._translate(sentences)
        return {"translations": text, "truncated": truncated, "source_ids": ids, "target_ids": tokens, "weights": weights}
