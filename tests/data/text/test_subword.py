"""SentencePiece vocabularies: reserved ids, round trip, and the graph tokenizer agreeing with Python."""
import numpy as np
import pytest
import tensorflow as tf

from data.errors import DataError
from data.text.subword import BOS, EOS, PAD, UNK, GraphSubwords, Subwords, train_sentencepiece
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
    sentences, sp = spanish
    graph = GraphSubwords(sp.proto, name="target_pieces")
    ids, truncated = graph.encode(tf.constant(sentences[:50]), max_length=64)
    python = sp.encode(sentences[:50])
    assert [row[:len(p) + 1] for row, p in zip(ids.numpy().tolist(), python)] == [p + [EOS] for p in python]
    assert (ids.numpy() == PAD).sum() == ids.shape[0] * ids.shape[1] - sum(len(p) + 1 for p in python)
    assert not truncated.numpy().any()
    assert [s.decode() for s in graph.decode(ids).numpy()] == sentences[:50]


def test_graph_encode_truncates_and_decode_stops_at_the_end(spanish):
    sentences, sp = spanish
    graph = GraphSubwords(sp.proto, name="target_pieces")
    long_, short = " ".join(sentences[:5]), min(sentences, key=len)
    assert len(sp.encode([short])[0]) <= 5
    ids, truncated = graph.encode(tf.constant([long_, short]), max_length=6)
    assert ids.shape == (2, 6) and truncated.numpy().tolist() == [True, False]
    assert ids.numpy()[0].tolist() == sp.encode([long_])[0][:5] + [EOS]
    unended = np.array(sp.encode([sentences[1]]), np.int32)  # no EOS: read to the row's end
    assert [s.decode() for s in graph.decode(tf.constant(unended)).numpy()] == [sentences[1]]


def test_two_tokenizers_keep_their_own_models_after_reload(spanish, tmp_path):
    """The naming quirk: with one name for both, a reloaded SavedModel gives both the first model."""
    sentences, spanish_sp = spanish
    english = Subwords(train_sentencepiece([s for s, _ in read_pairs(TranslationDataConfig())[:3000]], vocab_size=600))
    module = tf.Module()
    module.source = GraphSubwords(english.proto, "source_pieces")
    module.target = GraphSubwords(spanish_sp.proto, "target_pieces")
    module.encode = tf.function(lambda s: (module.source.encode(s, 64)[0], module.target.encode(s, 64)[0]),
                                input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "m"))
    source_ids, target_ids = tf.saved_model.load(str(tmp_path / "m")).encode(tf.constant(sentences[:1]))
    assert source_ids.numpy()[0, :-1].tolist() == english.encode(sentences[:1])[0]
    assert target_ids.numpy()[0, :-1].tolist() == spanish_sp.encode(sentences[:1])[0]
    assert source_ids.numpy().tolist() != target_ids.numpy().tolist()


def test_no_sentences_is_a_clear_error():
    with pytest.raises(DataError, match="no sentences to train the subword vocabulary on"):
        train_sentencepiece([], vocab_size=100)


def test_sentences_all_too_long_for_sentencepiece_say_so():
    """Paragraph-aligned text: SentencePiece leaves out sentences over 4,192 bytes without a word."""
    with pytest.raises(DataError, match=r"every sentence is longer than 4,192 bytes .* split the text into sentences"):
        train_sentencepiece(["word " * 1000] * 10, vocab_size=100)


def test_a_vocabulary_too_small_for_the_characters_names_our_flag_and_the_size_needed():
    with pytest.raises(DataError, match=r"--data.vocab_size 100 is too small for these sentences: .* at least 278$"):
        train_sentencepiece(["hello world", "καλημέρα κόσμε"] * 50, vocab_size=100)
