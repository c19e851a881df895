"""SentencePiece vocabularies: reserved ids, round trip, and the graph tokenizer agreeing with Python."""
import numpy as np
import pytest

from data.errors import DataError
from data.text.subword import BOS, EOS, PAD, UNK, Subwords, train_sentencepiece
from data.text.pairs import TranslationDataConfig, read_pairs


@pytest.fixture(scope="module")
def spanish():
    sentences = [t for _, t in read_pairs(TranslationDataConfig())[:5000]]
    return sentences, Subwords(train_sentencepiece(sentences, vocab_size=800))


def test_reserved_ids_and_size(spanish):
    _, sp = spanish
    assert sp.pieces([PAD, UNK, BOS, EOS]) == ["<pad>", "<unk>", "<s>", "</s>"]
    assert 700 <= len(sp) <= 800


def test_round_trip(spanish):
    sentences, sp = spanish
    sample = sentences[:300] + ["¿Dónde está la estación?", "Tengo hambre."]
    assert sp.decode(sp.encode(sample)) == sample
    assert all(min(ids) > EOS for ids in sp.encode(sample))  # no reserved id inside a sentence


def test_training_is_deterministic(spanish):
    sentences, sp = spanish
    assert train_sentencepiece(sentences, vocab_size=800) == sp.proto


def test_graph_tokenizer_agrees_with_python(spanish):
    import tensorflow_text as text

    sentences, sp = spanish
    graph = text.SentencepieceTokenizer(model=sp.proto, out_type="int32")
    ids = graph.tokenize(np.array(sentences[:50], dtype=object)).to_list()
    assert ids == sp.encode(sentences[:50])
    import tensorflow as tf

    assert [s.decode() for s in graph.detokenize(tf.ragged.constant(ids)).numpy()] == sentences[:50]


def test_no_sentences_is_a_clear_error():
    with pytest.raises(DataError, match="no sentences to train the subword vocabulary on"):
        train_sentencepiece([], vocab_size=100)
