"""Fine-tuning options and phases, the same for every vision app: train the new layers on a frozen
pretrained backbone first, then unfreeze its top N layers (or all) at a lower learning rate."""
import dataclasses
from typing import Optional

from apps.core.app import Phase
from apps.core.config import field
from apps.core.errors import UserError
from backbones import set_trainable_top


@dataclasses.dataclass
class FinetuneConfig:
    """Mixed into an app's model config (flags stay `--model.freeze_epochs` etc.)."""

    weights: Optional[str] = field(None, "backbone weights: 'imagenet' (embedded for squeezenet and efficientnet_lite0) "
                                         "or a weights file path")
    freeze_epochs: int = field(0, "fine-tuning: first N epochs train only the new layers on the frozen backbone", min=0)
    unfreeze_layers: str = field("all", "fine-tuning: then unfreeze the backbone's top N layers, or 'all' "
                                        "(0: it stays frozen; BatchNorm always stays frozen)")
    finetune_lr_factor: float = field(0.1, "fine-tuning: learning-rate factor once backbone layers train",
                                      min=0.0, min_exclusive=True)


def unfreeze_count(value):
    """'all' or a non-negative layer count."""
    if str(value).strip().lower() == "all":
        return "all"
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise UserError(f"config key 'model.unfreeze_layers' must be 'all' or a layer count >= 0; got {value!r}")
    return n


def finetune_phases(cfg, epochs, freeze_backbone=None):
    """Training phases for a model whose pretrained part is the sub-model "backbone". Without weights,
    or with freeze_epochs 0, everything trains from the first step. `freeze_backbone(model)` sets what trains
    in the frozen phase (default: all but the backbone; YOLO, whose backbone holds its heads, trains those)."""
    n = unfreeze_count(cfg.unfreeze_layers)
    if not cfg.weights or not cfg.freeze_epochs:
        return [Phase("train", epochs)]
    freeze = Phase("head", min(cfg.freeze_epochs, epochs),
                   prepare=freeze_backbone or (lambda model: set_trainable_top(model, 0)))
    if n == 0:
        return [Phase("head", epochs, prepare=freeze.prepare)]
    return [freeze, Phase("finetune", epochs, prepare=lambda model: set_trainable_top(model, n),
                          lr_factor=cfg.finetune_lr_factor)]
