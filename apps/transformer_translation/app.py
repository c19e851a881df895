"""The Transformer translation app: an encoder-decoder Transformer trained on sentence pairs (everything
but the model is apps/core/translation.py's, shared with the other translation apps).

    python -m apps transformer_translation train               # embedded English-Spanish pairs
    python -m apps transformer_translation evaluate            # sacreBLEU (single and multi-reference), chrF, examples
    python -m apps transformer_translation predict "I am hungry." --attention
    python -m apps transformer_translation export              # strings in, translations out
"""
import numpy as np

from apps.core.registry import register_app
from apps.core.translation import TranslationApp
from apps.transformer_translation.config import TransformerTranslationConfig
from apps.transformer_translation.model import Transformer
from data.text.subword import EOS


@register_app("transformer_translation")
class TransformerTranslationApp(TranslationApp):
    """Sentence pairs in; a Transformer that translates, scored with sacreBLEU and chrF."""

    Config = TransformerTranslationConfig
    smoke_model_flags = ("--model.hidden_dim", "64", "--model.intermediate_dim", "128", "--model.encoder_layers", "1",
                         "--model.decoder_layers", "1", "--model.dropout", "0")

    def build_model(self):
        model = Transformer(len(self.prepared.source), len(self.prepared.target), **vars(self.config.model))
        dummy = np.full((1, 8), EOS, np.int32)
        model((dummy, dummy))  # create the weights, which the runner hands to the optimizer
        return model
