"""Subword tokenisation with SentencePiece (unigram LM), trained on the training split only.

SentencePiece is lossless (spaces are kept as "▁" pieces, and characters too rare for the vocabulary
fall back to their UTF-8 bytes rather than to "unknown"), so `decode(encode(s)) == s` for text
already NFKC-normalised, and the same model file runs in Python here and in the exported graph
through tensorflow-text's SentencepieceTokenizer. Ids 0-3 are reserved: pad, unknown, begin, end.

    proto = train_sentencepiece(["I am hungry.", ...], vocab_size=4000)
    sp = Subwords(proto); sp.encode(["I am hungry."]) -> [[...ids]]
"""
import io

import sentencepiece as spm

from data.errors import DataError

PAD, UNK, BOS, EOS = 0, 1, 2, 3


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
            input_sentence_size=max_sentences, shuffle_input_sentence=True, num_threads=2, minloglevel=2)
    except RuntimeError as e:
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
