"""The word-embeddings app: skip-gram (or CBOW) with negative sampling, word2vec's recipe.

    python -m apps word_embeddings train                       # embedded SOTU corpus, ~10 s
    python -m apps word_embeddings evaluate                    # analogies, WordSim-353, neighbours
    python -m apps word_embeddings predict war "king - man + woman"
    python -m apps word_embeddings export                      # SavedModel + word2vec text + projector TSVs
"""
import re

import keras
import tensorflow as tf

from apps.core.app import App, SmokeExample
from apps.core.errors import UserError
from apps.core.registry import register_app
from apps.word_embeddings.config import WordEmbeddingsConfig
from apps.word_embeddings.evaluation import (analogy_accuracy, nearest, read_analogies, read_wordsim,
                                             wordsim_spearman)
from apps.word_embeddings.model import WordEmbeddings, normalized
from apps.word_embeddings.pictures import plot_neighbourhoods
from apps.word_embeddings.serving import EmbeddingServing, write_projector_files, write_word2vec_text
from data.generated.toy_text import write_planted_corpus
from data.text.skipgram import chunk_count, train_epoch
from data.text.corpus import EMBEDDED_WORD_EVAL, prepare_corpus, read_vocabulary, standardize


@register_app("word_embeddings")
class WordEmbeddingsApp(App):
    """Word vectors: skip-gram or CBOW with negative sampling, evaluated on analogies and WordSim-353."""

    Config = WordEmbeddingsConfig
    default_data = "embedded State of the Union addresses 1961-2021, 372k words"
    single_device = "sparse row updates of one table in place, as word2vec's threads do"
    predict_inputs = "WORD_OR_ANALOGY"
    predict_inputs_help = 'words (their nearest neighbours) or analogies such as "king - man + woman"'

    def __init__(self, config, run_dir=None):
        super().__init__(config, run_dir)
        self._corpus = None
        self._serving = None  # the module being exported, whose temporary vocabulary file export_files removes
        self.vocabulary = None

    @property
    def corpus(self):
        if self._corpus is None:
            self._corpus = prepare_corpus(self.config.data, self.run_dir / "corpus")
            self.vocabulary = self._corpus.vocabulary
            c = self._corpus
            print(f"corpus: {c.lines:,} lines, {c.words:,} words; vocabulary {len(c.vocabulary):,} words "
                  f"(min count {self.config.data.min_count}) covering {c.kept_words:,} words")
        return self._corpus

    def state(self):
        return {"vocabulary": "corpus/vocabulary.tsv", "words": self.corpus.words, "kept_words": self.corpus.kept_words}

    def load_state(self, state):
        path = self.run_dir / state["vocabulary"]
        if not path.is_file():
            raise UserError(f"the run's vocabulary {path} is missing; train again")
        self.vocabulary, _ = read_vocabulary(path)

    @classmethod
    def smoke_example(cls, folder):
        corpus = write_planted_corpus(folder / "corpus.txt", sentences=600)
        flags = ["--data.source", "files", "--data.path", str(corpus), "--epochs", "4", "--batch_size", "2000",
                 "--data.min_count", "1", "--model.dim", "16", "--learning_rate", "0.05", "--verbose", "line"]
        return SmokeExample(flags, "cat", {"words": [b"cat", b"unicorn"]})

    def build_model(self):
        m = self.config.model
        # Named: its variables' paths (word_embeddings/vectors), which the run records, must not take Keras'
        # process-wide number (word_embeddings_3) when a process builds a second one.
        return WordEmbeddings(len(self.corpus.vocabulary), m.dim, cbow=m.arch == "cbow", trust=m.trust,
                              seed=self.config.seed, name="word_embeddings")

    def build_dataset(self, split, epoch=0):
        if split != "train":
            return None  # no held-out text: evaluation is analogies and similarities
        c, cfg = self.corpus, self.config
        return train_epoch(c.ids_path, c.counts, cfg.data, cfg.batch_size, cfg.seed, epoch, cfg.chunks_per_call)

    def build_optimizer(self, updates_per_epoch, lr_factor=1.0):
        """Holds the learning rate and step count that WordEmbeddings.train_step reads (it has no slots)."""
        cfg = self.config
        lr = cfg.learning_rate * lr_factor
        end = cfg.min_learning_rate * lr_factor if cfg.schedule == "linear" else lr
        total = max(cfg.epochs * updates_per_epoch, 1)
        return keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.PolynomialDecay(lr, total, end))

    def updates_per_epoch(self, steps_per_epoch):
        return chunk_count(self.corpus.ids_path, self.config.batch_size)  # one SGD step per chunk

    def compile_defaults(self):
        return {}  # the loss lives in WordEmbeddings.train_step

    def evaluate(self, model, out_dir):
        cfg = self.config
        vectors = model.vectors.numpy()
        analogies = read_analogies(cfg.analogies or EMBEDDED_WORD_EVAL / "questions-words.txt")
        wordsim = read_wordsim(cfg.wordsim or EMBEDDED_WORD_EVAL / "wordsim353.tsv")
        report = {"vocabulary": len(self.vocabulary),
                  "analogy": analogy_accuracy(vectors, self.vocabulary, analogies, cfg.analogy_vocab),
                  "wordsim353": wordsim_spearman(vectors, self.vocabulary, wordsim)}
        report["analogy_3cosadd"] = report["analogy"]["3cosadd"]
        report["analogy_3cosmul"] = report["analogy"]["3cosmul"]
        report["analogy_coverage"] = report["analogy"]["coverage"]
        report["wordsim353_spearman"] = report["wordsim353"]["spearman"]
        index, unit = self._index(), normalized(vectors)
        queries = [_standard_word(w) for w in cfg.queries]  # as the corpus was standardised: War -> war
        known = [w for w in queries if w in index]
        if len(known) < len(queries):
            print(f"--queries not in the vocabulary ({len(self.vocabulary):,} words), no neighbours shown: "
                  + ", ".join(w for w in queries if w not in index))
        report["neighbours"] = {w: nearest(unit, self.vocabulary, unit[index[w]], cfg.top_k + 1)[1:] for w in known}
        for w, near in report["neighbours"].items():
            print(f"{w}: " + ", ".join(f"{n} ({s:.2f})" for n, s in near))
        if known:
            plot_neighbourhoods(vectors, self.vocabulary, report["neighbours"], out_dir / "neighbours.png")
        return report

    def predict(self, model, inputs):
        unit, index = normalized(model.vectors.numpy()), self._index()
        records = []
        for text in inputs:
            terms = _parse_query(text)
            words = [_standard_word(w) for _, w in terms]
            missing = [w for w in words if w not in index]
            if missing:
                records.append(f"{text}: not in the vocabulary ({len(self.vocabulary):,} words): {', '.join(missing)}")
                continue
            query = sum(sign * unit[index[w]] for (sign, _), w in zip(terms, words))
            near = [(n, s) for n, s in nearest(unit, self.vocabulary, query, self.config.top_k + len(words))
                    if n not in words][:self.config.top_k]
            records.append(f"{text}: " + ", ".join(f"{n} ({s:.3f})" for n, s in near))
        return records

    def serving_model(self, model):
        self._serving = EmbeddingServing(model.vectors.numpy(), self.vocabulary)
        return self._serving

    def extra_signatures(self, module):
        return {"neighbors": module.neighbors}

    def export_files(self, model, directory):
        """Called once the SavedModel is written: its vocabulary asset is in assets/, so the module's
        temporary copy goes; then the plain-text files."""
        if self._serving is not None:
            self._serving.release_vocabulary_file()
        vectors = model.vectors.numpy()
        write_word2vec_text(directory / "vectors.txt", vectors, self.vocabulary)
        write_projector_files(directory, vectors, self.vocabulary)

    def _index(self):
        return {w: i for i, w in enumerate(self.vocabulary)}


def _parse_query(text):
    """'king - man + woman' -> [(1, 'king'), (-1, 'man'), (1, 'woman')]; a plain word -> [(1, word)]. A sign
    is an operator on its own or leading a word ('king -man +woman'); inside a word it is the word's
    ('well-known')."""
    parts = re.findall(r"(?<!\S)[+-]|\S+", text)
    terms, sign = [], 1
    for part in parts:
        if part in ("+", "-"):
            sign = 1 if part == "+" else -1
        else:
            terms.append((sign, part))
            sign = 1
    if not terms:
        raise UserError(f"predict: {text!r} has no word")
    return terms


def _standard_word(word):
    """A query word standardised as the corpus was (lower-case; punctuation splits words)."""
    tokens = standardize(tf.constant([word]))[0].numpy()
    return tokens[0].decode() if len(tokens) == 1 else word.lower()
