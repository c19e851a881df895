"""Configuration of the style-transfer app. The defaults run offline: the embedded SqueezeNet's features,
a feed-forward (Johnson) network for Starry Night trained on the embedded photos, and Gatys' optimisation
for `predict` without a trained model."""
import dataclasses

from apps.core.config import field
from apps.core.run_config import FitConfig
from apps.style_transfer.features import FeatureConfig
from apps.style_transfer.gatys import GatysConfig
from data.style.pipeline import StyleDataConfig

ARCHS = ["johnson", "adain"]
METHODS = ["auto", "gatys", "model"]


@dataclasses.dataclass
class NetConfig:
    arch: str = field("johnson", "what `train` trains: johnson (one style, --style) or adain (any style, trained "
                                 "on --data.styles)", ARCHS)
    width: int = field(16, "johnson: channels of the first convolution (x2, x4 after the two downsamplings); "
                           "Johnson et al. used 32", min=1)
    residual_blocks: int = field(5, "johnson: residual blocks at a quarter of the resolution", min=0)
    decoder_width: int = field(0, "adain: channels of the decoder's first convolution (0: the encoder layer's)", min=0)
    style_weight: float = field(0.0, "adain: weight of the style statistics loss beside the content loss "
                                     "(0: the backbone's default)", min=0.0)


@dataclasses.dataclass
class StyleConfig(FitConfig):
    epochs: int = field(6, "total epochs (an epoch is --data.crops_per_epoch crops); resuming a finished run with "
                           "more epochs extends it", min=1)
    batch_size: int = field(4, "training batch size (crops)", min=1)
    learning_rate: float = field(1e-3, "peak learning rate (Johnson et al.: Adam at 1e-3)", min=0.0)
    style: str = field("starry_night", "the style image: an image file or an embedded painting (starry_night, "
                                       "scream); johnson trains on it, predict with gatys or adain uses it")
    method: str = field("auto", "predict: gatys optimises pixels; model runs the trained network; auto: the model "
                                "when the run has one, else gatys", METHODS)
    strength: float = field(1.0, "predict with adain: 0 keeps the content, 1 the full style", min=0.0, max=1.0)
    features: FeatureConfig = field(FeatureConfig())
    gatys: GatysConfig = field(GatysConfig())
    model: NetConfig = field(NetConfig())
    data: StyleDataConfig = field(StyleDataConfig())
    examples: int = field(3, "evaluate: held-out photos drawn in the sheet", min=1)
