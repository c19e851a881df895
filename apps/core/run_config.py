"""Shared options: `RunConfig` for every run (directory, seed, strategy, checkpoints, progress) and
`FitConfig` for apps that `fit()` with a Keras optimizer (optimizer, schedule, clipping, accumulation).
An app with its own update step (word embeddings) takes only RunConfig and declares its own rates.
Every number declares its range (`min=`, `max=`, see data/fields.py); `check` holds the cross-field facts."""
import dataclasses
from typing import Optional

from apps.core.config import field

OPTIMIZERS = ["sgd", "rmsprop", "adam", "adamw"]
SCHEDULES = ["constant", "step", "exponential", "cosine", "linear", "inverse_sqrt"]
STRATEGIES = ["default", "auto", "mirrored", "multi-worker", "tpu"]


@dataclasses.dataclass
class RunConfig:
    run_dir: Optional[str] = field(None, "where checkpoints, logs and plots go (default runs/<app>)")
    seed: int = field(0, "seed for weights, data order and augmentation", min=0, max=2**32 - 1)
    deterministic: bool = field(False, "enable TensorFlow op determinism (bit-identical reruns)")
    strategy: str = field("default", "tf.distribute strategy", STRATEGIES)
    cpu_devices: int = field(1, "split the CPU into N logical devices (try mirrored strategies without GPUs)", min=1)
    tpu: Optional[str] = field(None, "TPU address for --strategy tpu (none: the local TPU)")
    epochs: int = field(3, "total epochs; resuming a finished run with more epochs extends it", min=1)
    batch_size: int = field(64, "global batch size, split across replicas", min=1)
    checkpoint_every_steps: int = field(0, "also checkpoint every N steps inside an epoch (0: epoch ends only)", min=0)
    keep_checkpoints: int = field(3, "checkpoints kept on disk", min=1)
    verbose: str = field("auto", "progress: bar, line (one per epoch), auto, or debug (lines + TensorFlow's own logs)",
                         ["auto", "bar", "line", "debug"])


@dataclasses.dataclass
class FitConfig(RunConfig):
    optimizer: str = field("adam", "optimizer", OPTIMIZERS)
    # 0 is allowed: weights then stay as they are (the early-stopping test relies on it).
    learning_rate: float = field(1e-3, "peak learning rate", min=0.0)
    momentum: float = field(0.9, "momentum for sgd/rmsprop", min=0.0, max=1.0, max_exclusive=True)
    weight_decay: float = field(0.0, "decoupled weight decay, any optimizer (model.l2 is the L2 penalty)", min=0.0)
    schedule: str = field("constant", "learning-rate schedule", SCHEDULES)
    min_learning_rate: float = field(0.0, "linear schedule: the rate at the last step", min=0.0)
    warmup_epochs: float = field(0.0, "linear warm-up length in epochs", min=0.0)
    step_epochs: int = field(10, "step schedule: divide the rate by 10 every N epochs", min=1)
    decay_rate: float = field(0.9, "exponential schedule: factor per epoch", min=0.0, max=1.0, min_exclusive=True)
    label_smoothing: float = field(0.0, "label smoothing for the cross-entropy", min=0.0, max=1.0, max_exclusive=True)
    clipnorm: Optional[float] = field(None, "clip each gradient to this norm", min=0.0, min_exclusive=True)
    grad_accum_steps: int = field(1, "accumulate gradients over N batches before a step", min=1)
    early_stopping_patience: int = field(0, "stop after N epochs without val improvement (0: off)", min=0)

    def check(self, prefix=""):
        check_rate_floor(self, prefix)


def check_rate_floor(cfg, prefix=""):
    """A linear schedule ends at min_learning_rate: it must not climb above the starting rate."""
    if cfg.schedule == "linear" and cfg.min_learning_rate > cfg.learning_rate:
        raise ValueError(f"config key '{prefix}min_learning_rate' ({cfg.min_learning_rate}) must be <= "
                         f"'{prefix}learning_rate' ({cfg.learning_rate}) for the linear schedule")

