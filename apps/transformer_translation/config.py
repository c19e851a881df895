"""Configuration of the Transformer translation app: its model, and the defaults it sets otherwise than
every translation app (apps/core/translation.py); they train offline on the embedded English-Spanish
pairs in a few minutes on 2 CPU cores."""
import dataclasses

from apps.core.config import field
from apps.core.translation import TranslationConfig


@dataclasses.dataclass
class ModelConfig:
    hidden_dim: int = field(256, "model width d (embeddings, attention, residual stream)", min=1)
    encoder_layers: int = field(2, "encoder blocks", min=1)
    decoder_layers: int = field(2, "decoder blocks", min=1)
    num_heads: int = field(4, "attention heads (hidden_dim must divide by it)", min=1)
    intermediate_dim: int = field(1024, "feed-forward inner width", min=1)
    dropout: float = field(0.1, "dropout on embeddings, attention weights, sub-layer outputs", min=0.0, max=1.0,
                           max_exclusive=True)
    tie_embeddings: bool = field(True, "share the target embedding matrix with the output layer")
    normalize_first: bool = field(False, "layer norm before each sub-layer (pre-norm) instead of after the residual")

    def check(self, prefix=""):
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"config key '{prefix}hidden_dim' ({self.hidden_dim}) must be divisible by "
                             f"'{prefix}num_heads' ({self.num_heads})")


@dataclasses.dataclass
class TransformerTranslationConfig(TranslationConfig):
    model: ModelConfig = field(ModelConfig())
    schedule: str = field("inverse_sqrt", "learning-rate schedule (Vaswani et al.: warm-up, then 1/sqrt(step))",
                          ["inverse_sqrt", "constant", "cosine", "linear"])
    warmup_epochs: float = field(1.0, "linear warm-up length in epochs", min=0.0)
