"""Configuration of the Transformer translation app; the defaults train offline on the embedded
English-Spanish pairs in a few minutes on 2 CPU cores."""
import dataclasses

from apps.core.config import field
from apps.core.run_config import FitConfig
from data.text.pairs import TranslationDataConfig


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
class TransformerTranslationConfig(FitConfig):
    data: TranslationDataConfig = field(TranslationDataConfig())
    model: ModelConfig = field(ModelConfig())
    epochs: int = field(8, "passes over the training pairs; resuming a finished run with more epochs extends it", min=1)
    batch_size: int = field(4096, "padded tokens per batch and side; rows = batch_size // bucket length (at least 1)",
                            min=1)
    learning_rate: float = field(1e-3, "peak learning rate, reached at the end of warm-up", min=0.0)
    schedule: str = field("inverse_sqrt", "learning-rate schedule (Vaswani et al.: warm-up, then 1/sqrt(step))",
                          ["inverse_sqrt", "constant", "cosine", "linear"])
    warmup_epochs: float = field(1.0, "linear warm-up length in epochs", min=0.0)
    label_smoothing: float = field(0.1, "label smoothing of the token cross-entropy", min=0.0, max=1.0, max_exclusive=True)
    clipnorm: float = field(1.0, "clip each gradient to this norm", min=0.0, min_exclusive=True)
    jit_compile: bool = field(True, "compile the training step with XLA (one compilation per bucket length)")
    beam_size: int = field(4, "beam width for evaluate, predict and export (1: greedy)", min=1)
    length_penalty: float = field(0.6, "GNMT length-penalty exponent alpha for beam search (0: none)", min=0.0)
    long_inputs: str = field("truncate", "sources longer than --data.max_length: truncate with a warning, or fail",
                             ["truncate", "fail"])
    attention: bool = field(False, "predict: also write cross-attention heat maps (PNG) to the run's predict/ folder")
    examples: int = field(10, "evaluate: example translations printed", min=0)
    eval_batch: int = field(64, "sentences translated per call in evaluate and predict", min=1)
