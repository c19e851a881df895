"""Configuration of the image-classification app; the defaults train offline on embedded Fashion-MNIST."""
import dataclasses
from typing import Optional

from apps.core.config import field
from apps.core.run_config import RunConfig
from apps.image_classification.model import ARCHS
from data.images.pipeline import ImageDataConfig


@dataclasses.dataclass
class ModelConfig:
    arch: str = field("resnet", "network: a zoo model or a pretrained backbone", ARCHS)
    width: int = field(16, "base channel count of zoo models")
    depth: int = field(2, "blocks per stage of zoo models")
    bottleneck: bool = field(False, "resnet: bottleneck blocks instead of basic ones")
    batch_norm: bool = field(True, "batch normalisation in zoo models")
    init: str = field("he", "kernel initialisation of zoo models", ["he", "xavier"])
    l2: float = field(0.0, "L2 penalty on zoo model kernels")
    dropout: float = field(0.0, "dropout before the classifier")
    weights: Optional[str] = field(None, "backbone weights: 'imagenet' (squeezenet: the embedded file) or a .h5 path")
    freeze_epochs: int = field(0, "fine-tuning: epochs training only the new head on a frozen backbone")
    unfreeze_layers: int = field(0, "fine-tuning: then unfreeze the backbone's top N layers (BatchNorm stays frozen)")
    finetune_lr_factor: float = field(0.1, "fine-tuning: learning-rate factor after unfreezing")


@dataclasses.dataclass
class ClassificationConfig(RunConfig):
    data: ImageDataConfig = field(ImageDataConfig())
    model: ModelConfig = field(ModelConfig())
    top_k: int = field(3, "predict: labels printed per image")
