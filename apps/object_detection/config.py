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
    arch: str = field("retinanet", "retinanet: a feature pyramid and shared heads over model.backbone (the model.* options "
                      "below); yolo: YOLOv4-tiny, fine-tuned from darknet's COCO weights with --model.weights "
                      "yolov4-tiny.weights (its own backbone, anchors and loss; model.negative_iou applies)",
                      ["retinanet", "yolo"])
    backbone: str = field("auto", "feature extractor: a zoo network or a pretrained backbone; auto: the zoo resnet "
                          "from scratch for generated scenes, efficientnet_lite0 with its ImageNet weights for photos",
                          ["auto", *backbone_names()])
    freeze_epochs: Optional[int] = field(None, "fine-tuning: first N epochs train only the new layers on the frozen "
                                               "backbone (default: a tenth of the epochs with pretrained weights)", min=0)
    width: int = field(32, "zoo backbones: base channel count", min=1)
    depth: int = field(1, "zoo backbones: blocks per stage", min=1)
    bottleneck: bool = field(False, "resnet: bottleneck blocks")
    fpn_width: int = field(64, "channels of the feature-pyramid levels", min=1)
    head_depth: int = field(2, "3x3 conv layers in each head before its output", min=0)
    head_width: int = field(64, "channels of the head conv layers", min=1)
    min_level: int = field(3, "finest pyramid level (stride 2**min_level)", min=1, max=8)
    max_level: int = field(5, "coarsest pyramid level; levels past the backbone's come from stride-2 convs", min=1, max=8)
    num_scales: int = field(3, "anchor sizes per level", min=1)
    aspect_ratios: str = field("0.5,1,2", "anchor height/width ratios, comma-separated")
    anchor_size: float = field(2.0, "anchor side at scale 1 = anchor_size * 2**level pixels", min=0.0, min_exclusive=True)
    anchors: str = field("fit", "fit: when the configured anchors cover under 0.95 of the training boxes, anchor_size and "
                         "aspect_ratios fitted to them (the run records them); config: the configured ones",
                         ["fit", "config"])
    positive_iou: float = field(0.5, "anchors with IoU >= this with a box learn it", min=0.0, max=1.0, min_exclusive=True)
    negative_iou: float = field(0.4, "anchors with IoU < this with every box are background (between: ignored)",
                                min=0.0, max=1.0)
    focal_alpha: float = field(0.25, "focal loss: weight of positives", min=0.0, max=1.0)
    focal_gamma: float = field(2.0, "focal loss: focusing exponent", min=0.0)
    box_loss: str = field("smooth_l1", "box loss: smooth L1 on the anchor deltas (RetinaNet), or 1 - GIoU of the "
                          "boxes (x2)", ["smooth_l1", "giou"])
    box_loss_weight: float = field(1.0, "weight of the box loss against the focal loss", min=0.0)
    loss_normalizer: str = field("image", "retinanet: divide each image's loss by its own positive anchors, or the "
                                 "batch's loss by the batch's (RetinaNet; each replica's batch under a strategy): every "
                                 "object weighs the same, so crowded images weigh more", ["image", "batch"])

    def check(self, prefix=""):
        if self.min_level > self.max_level:
            raise ValueError(f"config key '{prefix}min_level' ({self.min_level}) must be <= '{prefix}max_level' "
                             f"({self.max_level})")
        if self.arch == "yolo" and self.loss_normalizer != "image":
            raise ValueError(f"config key '{prefix}loss_normalizer' applies to model.arch retinanet; YOLO's loss "
                             "keeps its own normalisation")
        from apps.object_detection.boxes import aspect_ratios

        aspect_ratios(self.aspect_ratios)  # refused here, before any data is read or generated
        if self.negative_iou > self.positive_iou:
            raise ValueError(f"config key '{prefix}negative_iou' ({self.negative_iou}) must be <= "
                             f"'{prefix}positive_iou' ({self.positive_iou})")


@dataclasses.dataclass
class DetectionConfig(FitConfig):
    epochs: Optional[int] = field(None, "total epochs (default: about 48,000 images shown, 12 to 100 epochs: 12 for "
                                        "the 4,000 scenes, 100 for a few hundred photos); resuming a finished run "
                                        "with more epochs extends it", min=1)
    batch_size: int = field(32, "global batch size, split across replicas", min=1)
    schedule: str = field("cosine", "learning-rate schedule", SCHEDULES)
    warmup_epochs: float = field(0.5, "linear warm-up length in epochs", min=0.0)
    clipnorm: Optional[float] = field(10.0, "clip each gradient to this norm", min=0.0, min_exclusive=True)
    data: DetectionDataConfig = field(DetectionDataConfig())
    model: DetectorConfig = field(DetectorConfig())
    score_threshold: float = field(0.05, "evaluate/export: drop detections scoring below this", min=0.0, max=1.0)
    draw_threshold: float = field(0.3, "predict: draw and print detections scoring at least this; evaluate: draw "
                                       "them and count their box errors", min=0.0, max=1.0)
    nms_iou: float = field(0.5, "per-class non-max suppression IoU", min=0.0, max=1.0)
    max_detections: int = field(100, "detections kept per image", min=1)

    def check(self, prefix=""):
        super().check(prefix)
        if self.data.image_size is not None and self.data.image_size < 2 ** self.model.max_level:
            raise ValueError(f"config key '{prefix}data.image_size' ({self.data.image_size}) must be at least the "
                             f"coarsest stride 2**{prefix}model.max_level ({2 ** self.model.max_level})")
        if self.data.multi_scale and self.model.arch == "yolo":
            raise ValueError(f"config key '{prefix}data.multi_scale' applies to model.arch retinanet; YOLOv4-tiny "
                             "trains at data.image_size here")
