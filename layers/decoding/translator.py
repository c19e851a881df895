"""The exported translator of any sequence-to-sequence model: a batch of source strings in, translated
strings out, with normalisation, SentencePiece tokenisation (tensorflow-text ops), beam search and
detokenisation inside the graph. Shared by the translation apps (the Transformer, the recurrent
seq2seq with attention); the model only has to offer the decoding interface of layers/decoding/search.py:

    state = model.start_decoding(source_ids, max_length)
    log_probs, state, weights = model.decode_step(tokens, index, state)   # weights [N, S]

A process that loads the SavedModel must `import tensorflow_text` first, which registers the
SentencePiece ops (the model needs nothing else from this project).

    module = TranslationServing(model, source_proto, target_proto, max_length=40, beam=4, alpha=0.6)
    module.serve(tf.constant(["I am hungry."]))["translations"]
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})

What the signatures do with unusual requests (tested in tests/apps/test_serving_guards.py):
- an empty batch, or a sentence that is not valid UTF-8: INVALID_ARGUMENT naming `sentences`
  (and the bad indices);
- an empty (or all-whitespace) sentence: an empty translation, `truncated` False;
- a long sentence: only its first `max_length - 1` subword tokens are translated and `truncated` is
  True. Text past the first `CHARS_PER_TOKEN * max_length` characters is cut before normalisation and
  tokenisation (so a megabyte-long request costs no more than a long sentence), which also sets
  `truncated`; no subword piece is that long, so the cut never changes what the model reads unless the
  text holds long runs of whitespace.
"""
import tensorflow as tf

from data.text.normalize import normalize_graph
from data.text.requests import checked_text
from data.text.subword import BOS, EOS, PAD, GraphSubwords
from layers.decoding.search import beam_search

CHARS_PER_TOKEN = 64  # characters read per source token the model takes (SentencePiece pieces are <= 16)


class TranslationServing(tf.Module):
    """`serve(sentences)` -> {"translations", "truncated"}; `attention(sentences)` adds the ids and the
    model's attention over the source at each target step (the `weights` of `decode_step`), for plots."""

    def __init__(self, model, source_proto, target_proto, max_length, beam=4, alpha=0.6):
        super().__init__()
        self.model = model
        self.source_tokenizer = GraphSubwords(source_proto, name="source_pieces")
        self.target_tokenizer = GraphSubwords(target_proto, name="target_pieces")
        self.max_length, self.beam, self.alpha = max_length, beam, alpha

    def _translate(self, sentences):
        sentences = checked_text(sentences, "sentences", "sentence")
        limit = CHARS_PER_TOKEN * self.max_length
        cut = tf.strings.length(sentences, unit="UTF8_CHAR") > limit
        text = normalize_graph(tf.strings.substr(sentences, tf.zeros_like(cut, tf.int32), tf.fill(tf.shape(cut), limit),
                                                 unit="UTF8_CHAR"))
        ids, truncated = self.source_tokenizer.encode(text, self.max_length)
        state = self.model.start_decoding(ids, self.max_length)
        tokens, weights = beam_search(self.model.decode_step, state, tf.shape(ids)[0], tf.shape(ids)[1], BOS, EOS,
                                      self.max_length, beam=self.beam, alpha=self.alpha)
        empty = tf.equal(text, "")  # nothing in, nothing out: no words, and no attention to plot
        translations = tf.where(empty, "", self.target_tokenizer.decode(tokens))
        just_eos = tf.concat([tf.fill(tf.shape(tokens[:, :1]), tf.constant(EOS, tokens.dtype)),
                              tf.fill(tf.shape(tokens[:, 1:]), tf.constant(PAD, tokens.dtype))], axis=1)
        tokens = tf.where(empty[:, None], just_eos, tokens)
        weights = tf.where(empty[:, None, None], tf.zeros_like(weights), weights)
        return translations, tf.logical_or(truncated, cut), ids, tokens, weights

    # autograph=False: the search loops are tf.while_loop already, and AutoGraph would convert every Keras call the
    # model makes inside them (7 s of each process's first translation, measured)
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")], autograph=False)
    def serve(self, sentences):
        text, truncated, _, _, _ = self._translate(sentences)
        return {"translations": text, "truncated": truncated}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")], autograph=False)
    def attention(self, sentences):
        text, truncated, ids, tokens, weights = self._translate(sentences)
        return {"translations": text, "truncated": truncated, "source_ids": ids, "target_ids": tokens, "weights": weights}
