"""Configuration of the seq2seq-with-attention app: its model; every other option (data, batches, loss,
decoding, evaluation) is every translation app's (apps/core/translation.py), with a constant learning rate
as the recurrent seq2seq papers trained."""
import dataclasses

from apps.core.config import field
from apps.core.translation import TranslationConfig
from apps.seq2seq_attention.model import Seq2SeqConfig


@dataclasses.dataclass
class Seq2SeqAttentionConfig(TranslationConfig):
    model: Seq2SeqConfig = field(Seq2SeqConfig())
