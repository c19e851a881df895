"""The exported word-vector module and the plain-text exports (word2vec text, Embedding Projector TSVs).

Out-of-vocabulary words are explicit: `serving_default` returns a zero vector and
`in_vocabulary` False for them, and `neighbors` returns empty strings and similarity 0.
Words are looked up stripped and lower-cased, as the corpus was standardised. The corpus was also composed
(NFC), which core TensorFlow cannot do in a graph, so a word typed decomposed ("cafe" + U+0301, as macOS
file names and some keyboards give it) is found through a second table of the words' decomposed (NFD) forms.

Unusual requests (tested in tests/apps/test_serving_guards.py): an empty batch, or a word that is not
valid UTF-8, is an INVALID_ARGUMENT naming `words` (and the bad indices); an empty string and a very
long string are simply out of vocabulary (no vocabulary word is empty or longer than the corpus'
longest word).
"""
import shutil
import tempfile
import unicodedata
import weakref
from pathlib import Path

import numpy as np
import tensorflow as tf

from apps.word_embeddings.model import normalized
from data.text.requests import checked_text


class EmbeddingServing(tf.Module):
    """Word strings in; vectors (serve) or the k nearest words by cosine (neighbors) out.

    The lookup table reads a vocabulary file, which tf.saved_model.save copies into the export's
    assets/: it is written to a temporary folder that `release_vocabulary_file()` removes once the
    SavedModel is written (the table, filled at construction, keeps working in this process). Should
    nobody call it (a failed save), the folder goes when the module is collected or the process exits."""

    VOCABULARY_PREFIX = "vocab-"  # of the temporary folder

    def __init__(self, vectors, vocabulary):
        super().__init__()
        self.vectors = tf.Variable(vectors, trainable=False, name="vectors")
        self.unit = tf.Variable(normalized(vectors), trainable=False, name="unit_vectors")
        folder = tempfile.mkdtemp(prefix=self.VOCABULARY_PREFIX)
        self._release = weakref.finalize(self, shutil.rmtree, folder, True)  # True: ignore_errors
        words = Path(folder) / "vocabulary.txt"  # copied into the SavedModel's assets
        words.write_text("".join(w + "\n" for w in vocabulary), encoding="utf-8")
        self.vocabulary_file = tf.saved_model.Asset(str(words))
        # Anonymous: a named table's shared name is built from the Asset's repr (its memory address), so a
        # second module in one process could get an earlier module's table back, filled with its words.
        self.table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            self.vocabulary_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1, experimental_is_anonymous=True)
        decomposed = Path(folder) / "decomposed.txt"  # "NFD form<TAB>row" for the words that have one; the
        # first line maps "" to the table's default, as TensorFlow cannot initialise a table from an empty file
        decomposed.write_text("\t-1\n" + "".join(f"{d}\t{i}\n" for i, w in enumerate(vocabulary)
                                                 if (d := unicodedata.normalize("NFD", w)) != w), encoding="utf-8")
        self.decomposed_file = tf.saved_model.Asset(str(decomposed))
        self.decomposed = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            self.decomposed_file, tf.string, 0, tf.int64, 1, delimiter="\t"), default_value=-1,
            experimental_is_anonymous=True)
        self.words = tf.Variable(vocabulary, trainable=False, name="words")

    def release_vocabulary_file(self):
        """Remove the temporary vocabulary folder (after the SavedModel is written: it holds its own copy)."""
        self._release()

    def _ids(self, words):
        words = checked_text(words, "words", "word")
        words = tf.strings.lower(tf.strings.strip(words), encoding="utf-8")
        ids = self.table.lookup(words)
        return tf.where(ids >= 0, ids, self.decomposed.lookup(words))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")], autograph=False)
    def serve(self, words):
        ids = self._ids(words)
        known = ids >= 0
        vectors = tf.gather(self.vectors, tf.maximum(ids, 0)) * tf.cast(known, tf.float32)[:, None]
        return {"vectors": vectors, "in_vocabulary": known}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words"), tf.TensorSpec([], tf.int32, name="k")],
                 autograph=False)
    def neighbors(self, words, k):
        ids = self._ids(words)
        known = ids >= 0
        k = tf.clip_by_value(k, 1, tf.shape(self.unit)[0] - 1)
        sims = tf.matmul(tf.gather(self.unit, tf.maximum(ids, 0)), self.unit, transpose_b=True)
        sims -= 3.0 * tf.one_hot(tf.maximum(ids, 0), tf.shape(self.unit)[0])  # never a word's own neighbour
        top = tf.math.top_k(sims, k)
        names = tf.where(known[:, None], tf.gather(self.words, top.indices), "")
        return {"neighbors": names, "similarities": top.values * tf.cast(known, tf.float32)[:, None],
                "in_vocabulary": known}


def write_word2vec_text(path, vectors, vocabulary):
    """The word2vec text format: a 'count dim' line, then 'word v1 ... vD' per word (gensim's
    KeyedVectors.load_word2vec_format reads it)."""
    row = " ".join(["%.6f"] * vectors.shape[1])
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(vocabulary)} {vectors.shape[1]}\n")
        for word, vector in zip(vocabulary, vectors.astype(np.float64)):
            f.write(word + " " + row % tuple(vector) + "\n")


def write_projector_files(directory, vectors, vocabulary):
    """vectors.tsv and metadata.tsv, the files the TensorBoard Embedding Projector loads."""
    directory = Path(directory)
    np.savetxt(directory / "vectors.tsv", vectors, fmt="%.6f", delimiter="\t")
    (directory / "metadata.tsv").write_text("".join(w + "\n" for w in vocabulary), encoding="utf-8")
