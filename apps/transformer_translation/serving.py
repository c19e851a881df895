"""The exported translator: a batch of source strings in, translated strings out, with normalisation,
SentencePiece tokenisation (tensorflow-text ops), beam search and detokenisation inside the graph.

A process that loads the SavedModel must `import tensorflow_text` first, which registers the
SentencePiece ops (the model needs nothing else from this project).
"""
import tensorflow as tf

from data.text.subword import BOS, EOS, PAD
from layers.beam_search import beam_search


def normalize_graph(sentences):
    """data.text.pairs.normalize in graph ops: NFKC, whitespace runs -> one space, stripped."""
    import tensorflow_text as text

    sentences = text.normalize_utf8(sentences, "NFKC")
    return tf.strings.strip(tf.strings.regex_replace(sentences, r"[\s\p{Z}]+", " "))


class TranslationServing(tf.Module):
    """`serve(sentences)` -> {"translations", "truncated"}; `attention(sentences)` adds the ids and the
    last decoder block's cross-attention weights, for plots."""

    def __init__(self, model, source_proto, target_proto, max_length, beam=4, alpha=0.6):
        super().__init__()
        import tensorflow_text as text

        self.model = model
        # distinct names: with the default name, a reloaded SavedModel gives both tokenizers the first model
        self.source_tokenizer = text.SentencepieceTokenizer(model=source_proto, out_type=tf.int32, name="source_pieces")
        self.target_tokenizer = text.SentencepieceTokenizer(model=target_proto, out_type=tf.int32, name="target_pieces")
        self.max_length, self.beam, self.alpha = max_length, beam, alpha

    def source_ids(self, sentences):
        """[N, S] ids ending with EOS, and whether the source was cut to fit max_length."""
        pieces = self.source_tokenizer.tokenize(normalize_graph(sentences))
        truncated = pieces.row_lengths() > self.max_length - 1
        pieces = pieces[:, :self.max_length - 1]
        ends = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(sentences)[0], 1], EOS))
        return tf.concat([pieces, ends], axis=1).to_tensor(PAD), truncated

    def _translate(self, sentences):
        ids, truncated = self.source_ids(sentences)
        state = self.model.start_decoding(ids, self.max_length)
        tokens, weights = beam_search(self.model.decode_step, state, tf.shape(ids)[0], tf.shape(ids)[1], BOS, EOS,
                                      self.max_length, beam=self.beam, alpha=self.alpha, pad=PAD)
        ended = tf.logical_or(tf.equal(tokens, EOS), tf.equal(tokens, PAD))
        lengths = tf.argmax(tf.concat([tf.cast(ended, tf.int32), tf.ones_like(tokens[:, :1])], 1), axis=1, output_type=tf.int32)
        text = self.target_tokenizer.detokenize(tf.RaggedTensor.from_tensor(tokens, lengths=lengths))
        return text, truncated, ids, tokens, weights

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def serve(self, sentences):
        text, truncated, _, _, _ = self._translate(sentences)
        return {"translations": text, "truncated": truncated}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def attention(self, sentences):
        text, truncated, ids, tokens, weights = self._translate(sentences)
        return {"translations": text, "truncated": truncated, "source_ids": ids, "target_ids": tokens, "weights": weights}
