"""Configuration of the seq2seq-with-attention app: its model, and the recipe it trains with, otherwise than
every translation app (apps/core/translation.py): Adam at 2e-3 over batches of 2,048 tokens a side, a short
warm-up and cosine decay, as bench/seq2seq.py found on the full English-Spanish pairs (BLEU 40.1). On the
embedded 30,000 pairs it reaches BLEU 16.5 in 10 epochs (~11 min on 2 cores), where the translation
defaults (4,096 tokens, constant 1e-3, 8 epochs) reached 8.4 and were still climbing."""
import dataclasses

from apps.core.config import field
from apps.core.translation import TranslationConfig
from apps.seq2seq_attention.model import Seq2SeqConfig


@dataclasses.dataclass
class Seq2SeqAttentionConfig(TranslationConfig):
    model: Seq2SeqConfig = field(Seq2SeqConfig())
    epochs: int = field(10, "passes over the training pairs; resuming a finished run with more epochs extends it", min=1)
    batch_size: int = field(2048, "padded tokens per batch and side; rows = batch_size // bucket length (at least 1)",
                            min=1)
    learning_rate: float = field(2e-3, "peak learning rate, reached at the end of warm-up", min=0.0)
    schedule: str = field("cosine", "learning-rate schedule", ["inverse_sqrt", "constant", "cosine", "linear"])
    warmup_epochs: float = field(0.1, "linear warm-up length in epochs", min=0.0)
