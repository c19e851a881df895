"""Configuration of the image-classification app; the defaults train offline on embedded Fashion-MNIST."""
import dataclasses

from apps.core.config import field
from apps.core.finetune import FinetuneConfig
from apps.core.run_config import FitConfig
from backbones import backbone_names
from data.images.pipeline import ImageDataConfig


@dataclasses.dataclass
class ModelConfig(FinetuneConfig):
    arch: str = field("resnet", "network: a zoo model or a pretrained backbone", backbone_names())
    width: int = field(16, "base channel count of zoo models", min=1)
    depth: int = field(2, "blocks per stage of zoo models", min=1)
    bottleneck: bool = field(False, "resnet: bottleneck blocks instead of basic ones")
    batch_norm: bool = field(True, "batch normalisation in zoo models")
    init: str = field("he", "kernel initialisation of zoo models", ["he", "xavier"])
    l2: float = field(0.0, "L2 penalty on zoo model kernels", min=0.0)
    dropout: float = field(0.0, "dropout before the classifier", min=0.0, max=1.0, max_exclusive=True)
    unfreeze_layers: str = field("0", "fine-tuning: then unfreeze the backbone's top N layers, or 'all' "
                                      "(0: it stays frozen; BatchNorm always stays frozen)")


@dataclasses.dataclass
class ClassificationConfig(FitConfig):
    data: ImageDataConfig = field(ImageDataConfig())
    model: ModelConfig = field(ModelConfig())
    top_k: int = field(3, "predict: labels printed per image", min=1)
