"""Configuration of the object-detection app; the defaults train offline on generated digit scenes."""
import dataclasses
from typing import Optional

from apps.core.config import field
from apps.core.finetune import FinetuneConfig
from apps.core.run_config import SCHEDULES, FitConfig
from backbones import backbone_names
from data.boxes.pipeline import DetectionDataConfig


@dataclasses.dataclass
class DetectorConfig(FinetuneConfig):
    backbone: str = field("resnet", "feature extractor: a zoo network or a pretrained backbone", backbone_names())
    width: int = field(32, "zoo backbones: base channel count")
    depth: int = field(1, "zoo backbones: blocks per stage")
    bottleneck: bool = field(False, "resnet: bottleneck blocks")
    fpn_width: int = field(64, "channels of the feature-pyramid levels")
    head_depth: int = field(2, "3x3 conv layers in each head before its output")
    head_width: int = field(64, "channels of the head conv layers")
    min_level: int = field(3, "finest pyramid level (stride 2**min_level)")
    max_level: int = field(5, "coarsest pyramid level; levels past the backbone's come from stride-2 convs")
    num_scales: int = field(3, "anchor sizes per level")
    aspect_ratios: str = field("0.5,1,2", "anchor height/width ratios, comma-separated")
    anchor_size: float = field(2.0, "anchor side at scale 1 = anchor_size * 2**level pixels")
    positive_iou: float = field(0.5, "anchors with IoU >= this with a box learn it")
    negative_iou: float = field(0.4, "anchors with IoU < this with every box are background (between: ignored)")
    focal_alpha: float = field(0.25, "focal loss: weight of positives")
    focal_gamma: float = field(2.0, "focal loss: focusing exponent")
    box_loss_weight: float = field(1.0, "weight of the smooth-L1 box loss against the focal loss")


@dataclasses.dataclass
class DetectionConfig(FitConfig):
    epochs: int = field(12, "total epochs; resuming a finished run with more epochs extends it")
    batch_size: int = field(32, "global batch size, split across replicas")
    schedule: str = field("cosine", "learning-rate schedule", SCHEDULES)
    warmup_epochs: float = field(0.5, "linear warm-up length in epochs")
    clipnorm: Optional[float] = field(10.0, "clip each gradient to this norm")
    data: DetectionDataConfig = field(DetectionDataConfig())
    model: DetectorConfig = field(DetectorConfig())
    score_threshold: float = field(0.05, "evaluate/export: drop detections scoring below this")
    draw_threshold: float = field(0.3, "predict: draw and print detections scoring at least this")
    nms_iou: float = field(0.5, "per-class non-max suppression IoU")
    max_detections: int = field(100, "detections kept per image")
