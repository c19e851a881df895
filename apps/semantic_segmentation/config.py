"""Configuration of the semantic-segmentation app; the defaults train offline on generated scenes."""
import dataclasses
from typing import Optional

from apps.core.config import field
from apps.core.run_config import SCHEDULES, FitConfig
from apps.semantic_segmentation.model import ModelConfig
from data.masks.pipeline import SegmentationDataConfig

LOSSES = ["cross_entropy", "dice", "cross_entropy+dice"]


@dataclasses.dataclass
class SegmentationConfig(FitConfig):
    epochs: int = field(8, "total epochs; resuming a finished run with more epochs extends it", min=1)
    batch_size: int = field(8, "global batch size (crops), split across replicas", min=1)
    schedule: str = field("cosine", "learning-rate schedule", SCHEDULES)
    warmup_epochs: float = field(0.25, "linear warm-up length in epochs", min=0.0)
    data: SegmentationDataConfig = field(SegmentationDataConfig())
    model: ModelConfig = field(ModelConfig())
    loss: str = field("cross_entropy", "training loss (pixels with id 255 are ignored by each)", LOSSES)
    class_weights: Optional[str] = field(None, "cross-entropy weight per class: comma-separated, one per class, "
                                               "or 'balanced' (median-frequency balancing of the training masks' "
                                               "pixels, as SegNet)")
    tta: bool = field(False, "evaluate/predict/export: average the 8 flips and 90-degree rotations of each image")
    examples: int = field(6, "evaluate: test images drawn as overlays (image, truth, prediction)", min=0)
