"""Subword tokenisation with SentencePiece (unigram LM), trained on the training split only.

SentencePiece is lossless (spaces are kept as "▁" pieces, and characters too rare for the vocabulary
fall back to their UTF-8 bytes rather than to "unknown"), so `decode(encode(s)) == s` for text
already NFKC-normalised, and the same model file runs in Python here (Subwords) and in the exported
graph (GraphSubwords, tensorflow-text's SentencepieceTokenizer). Ids 0-3 are reserved: pad, unknown,
begin, end; PAD, UNK, BOS and EOS below are the suite's one definition of them (masks, losses, search
and batches pad with PAD).

    proto = train_sentencepiece(["I am hungry.", ...], vocab_size=4000)
    sp = Subwords(proto); sp.encode(["I am hungry."]) -> [[...ids]]
    graph = GraphSubwords(proto, name="source_pieces")
    ids, truncated = graph.encode(tf.constant(["I am hungry."]), max_length=40)   # [[...ids, EOS]]
    graph.decode(ids)                                                             # [b"I am hungry."]
"""
import io
import re

import sentencepiece as spm
import tensorflow as tf

from data.errors import DataError

PAD, UNK, BOS, EOS = 0, 1, 2, 3


MAX_SENTENCE_BYTES = 4192  # SentencePiece's default: longer sentences do not train the vocabulary


def train_sentencepiece(sentences, vocab_size, seed=0, max_sentences=2_000_000):
    """The serialized model (bytes) of a unigram SentencePiece vocabulary of about `vocab_size` pieces."""
    if not sentences:
        raise DataError("no sentences to train the subword vocabulary on")
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type="unigram",
            character_coverage=0.9995, byte_fallback=True, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary instead of an error
            input_sentence_size=max_sentences, shuffle_input_sentence=True, num_threads=2, minloglevel=2,
            max_sentence_length=MAX_SENTENCE_BYTES)
    except RuntimeError as e:
        needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(e))
        if needed:  # SentencePiece's own advice names a flag of its command line, not of ours
            raise DataError(f"--data.vocab_size {vocab_size} is too small for these sentences: their characters, the "
                            f"256 byte pieces and the 4 special ids need at least {needed.group(1)}") from None
        if "sentences_.empty()" in str(e):  # it leaves out sentences over max_sentence_length bytes, silently
            raise DataError(f"cannot train the subword vocabulary: every sentence is longer than {MAX_SENTENCE_BYTES:,} "
                            "bytes (SentencePiece leaves such out); split the text into sentences") from None
        raise DataError(f"cannot train the subword vocabulary: {str(e).splitlines()[0]}") from None
    return model.getvalue()


class Subwords:
    """A trained SentencePiece model: sentences <-> id lists (no begin/end ids added)."""

    def __init__(self, proto):
        self.proto = proto
        self._sp = spm.SentencePieceProcessor(model_proto=proto)

    def __len__(self):
        return self._sp.get_piece_size()

    def encode(self, sentences):
        return self._sp.encode(list(sentences), out_type=int)

    def decode(self, ids):
        return self._sp.decode([[int(i) for i in row] for row in ids])

    def pieces(self, ids):
        return [self._sp.id_to_piece(int(i)) for i in ids]


class GraphSubwords(tf.Module):
    """A SentencePiece model in graph ops, for exported models (a process that loads one must
    `import tensorflow_text`, which registers the ops).

    `encode` gives the ids a sequence model reads, as the training batches hold them: the pieces, cut
    to `max_length - 1`, then EOS, padded with PAD; `decode` reads each row up to its first EOS or PAD.

    `name` is required and must differ between the tokenizers of one exported module: tensorflow-text
    creates the model resource under that name scope, and with the default name a reloaded SavedModel
    gives every tokenizer the model of the first one.
    """

    def __init__(self, proto, name):
        super().__init__(name=name)
        import tensorflow_text as text

        self.tokenizer = text.SentencepieceTokenizer(model=proto, out_type=tf.int32, name=name)

    def encode(self, sentences, max_length):
        """[N, S] int32 ids ending with EOS (padded with PAD), and [N] whether a sentence was cut to fit."""
        pieces = self.tokenizer.tokenize(sentences)
        truncated = pieces.row_lengths() > max_length - 1
        pieces = pieces[:, :max_length - 1]
        ends = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(sentences)[0], 1], EOS))
        return tf.concat([pieces, ends], axis=1).to_tensor(PAD), truncated

    def decode(self, ids):
        """[N] strings of [N, T] ids, each row read up to its first EOS or PAD."""
        ended = tf.logical_or(tf.equal(ids, EOS), tf.equal(ids, PAD))
        # the first ended position, or T when a row never ends (the appended column of ones)
        lengths = tf.argmax(tf.concat([tf.cast(ended, tf.int32), tf.ones_like(ids[:, :1])], 1), axis=1,
                            output_type=tf.int32)
        return self.tokenizer.detokenize(tf.RaggedTensor.from_tensor(ids, lengths=lengths))
