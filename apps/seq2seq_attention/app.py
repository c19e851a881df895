"""The seq2seq-with-attention app: a recurrent encoder-decoder (bidirectional GRU/LSTM encoder, Bahdanau or
Luong attention decoder) trained on sentence pairs; everything but the model is apps/core/translation.py's,
shared with the Transformer app, so the two are measured on the same splits with the same metrics.

    python -m apps seq2seq_attention train                     # embedded English-Spanish pairs
    python -m apps seq2seq_attention evaluate                  # sacreBLEU (single and multi-reference), chrF
    python -m apps seq2seq_attention predict "I am hungry." --attention
    python -m apps seq2seq_attention export                    # strings in, translations out
"""
from apps.core.registry import register_app
from apps.core.translation import TranslationApp
from apps.seq2seq_attention.config import Seq2SeqAttentionConfig
from apps.seq2seq_attention.model import build_seq2seq


@register_app("seq2seq_attention")
class Seq2SeqAttentionApp(TranslationApp):
    """Sentence pairs in; a recurrent encoder-decoder with attention that translates, scored with sacreBLEU and chrF."""

    Config = Seq2SeqAttentionConfig
    smoke_model_flags = ("--model.units", "16", "--model.embedding_dim", "16", "--model.dropout", "0")

    def build_model(self):
        return build_seq2seq(self.config.model, len(self.prepared.source), len(self.prepared.target))
