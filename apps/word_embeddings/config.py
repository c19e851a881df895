"""Configuration of the word-embeddings app; the defaults train offline on the embedded SOTU corpus
with word2vec's (and gensim's) default recipe."""
import dataclasses
from typing import List, Optional

from apps.core.config import field
from apps.core.run_config import RunConfig, check_rate_floor
from data.text.skipgram import TextDataConfig


@dataclasses.dataclass
class ModelConfig:
    arch: str = field("skipgram", "skip-gram (a word predicts its context) or CBOW (the context predicts the word)",
                      ["skipgram", "cbow"])
    dim: int = field(100, "vector size", min=1)
    trust: float = field(1.0, "damp a row's batch step where lr * curvature exceeds this (see model.py; inf: never)",
                         min=0.0, min_exclusive=True, finite=False)


@dataclasses.dataclass
class WordEmbeddingsConfig(RunConfig):
    data: TextDataConfig = field(TextDataConfig())
    model: ModelConfig = field(ModelConfig())
    epochs: int = field(5, "passes over the corpus; resuming a finished run with more epochs extends it", min=1)
    batch_size: int = field(5000, "corpus words per SGD step", min=1)
    chunks_per_call: int = field(16, "SGD steps run inside one call of the training function (less overhead)", min=1)
    learning_rate: float = field(0.025, "starting learning rate of the plain sparse SGD step (word2vec's alpha)", min=0.0)
    schedule: str = field("linear", "learning-rate schedule (word2vec: linear decay)", ["linear", "constant"])
    min_learning_rate: float = field(0.0001, "linear schedule: the rate at the last step (word2vec's min_alpha)", min=0.0)
    analogies: Optional[str] = field(None, "analogy questions file (none: the embedded questions-words.txt)")
    wordsim: Optional[str] = field(None, "word-similarity TSV (none: the embedded WordSim-353)")
    analogy_vocab: int = field(30000, "analogies: only questions within the N most frequent words", min=1)
    queries: List[str] = field(["war", "peace", "tax", "health", "soviet", "energy"], "evaluate: words whose neighbours are shown")
    top_k: int = field(10, "neighbours printed per word", min=1)

    def check(self, prefix=""):
        check_rate_floor(self, prefix)
