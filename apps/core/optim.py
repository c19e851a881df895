"""Optimizer and learning-rate schedule from a FitConfig.

Schedules sized by --epochs (cosine, linear) decay to their floor at the last step they were sized
for; the others (constant, step, exponential, inverse_sqrt) give every step the same rate whatever
--epochs is, so a run extended with more epochs follows one long run's curve. What the runner does
with a sized schedule when a run is extended: see `Offset` and apps.core.runner.
"""
import keras

from apps.core.errors import UserError

SIZED_BY_EPOCHS = ("cosine", "linear")


def sized_by_epochs(cfg):
    """True if the config's learning-rate curve is stretched over its --epochs (any config with a schedule)."""
    return getattr(cfg, "schedule", None) in SIZED_BY_EPOCHS


@keras.saving.register_keras_serializable(package="suite")
class Offset(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` counted from optimizer step `start` (and at its first value before it): the curve of a
    stretch of training that begins inside a run.

    Why: extending a finished run whose schedule is sized by --epochs (cosine, linear) cannot follow
    the curve of one long run, since the run so far already decayed over the epochs it was given. Of
    the three things that could happen: re-sizing the curve to the new --epochs jumps back to the
    middle of it (a 10-epoch cosine extended to 20 resumes at half the peak rate, undoing the
    annealing without saying so); holding the rate it ended at trains at ~0 (cosine) for every added
    epoch; a fresh curve over the added epochs (a warm restart, as in SGDR, and as gensim's word2vec
    does when trained again) does what `--epochs 20` asks, train 10 more epochs with the schedule
    the user chose. So an extension (or any change of --epochs) starts a new stretch at the restored
    position: warm-up (if any) and decay from --learning_rate over the stretch's epochs; resuming
    with the same --epochs continues the stretch exactly.

        Offset(keras.optimizers.schedules.CosineDecay(0.1, 100), start=500)(550)  # 0.05: halfway
    """

    def __init__(self, schedule, start):
        self.schedule = schedule
        self.start = start

    def __call__(self, step):
        return self.schedule(keras.ops.maximum(keras.ops.cast(step, "float32") - float(self.start), 0.0))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "start": self.start}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["start"])


@keras.saving.register_keras_serializable(package="suite")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 over `warmup_steps`, then `schedule` (counted from the end of warm-up)."""

    def __init__(self, schedule, warmup_steps):
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        after = self.schedule(keras.ops.maximum(step - self.warmup_steps, 0.0))
        ramp = after * (step + 1.0) / max(self.warmup_steps, 1)
        return keras.ops.where(step < self.warmup_steps, ramp, after)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["warmup_steps"])


@keras.saving.register_keras_serializable(package="suite")
class InverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """peak * sqrt(w / (step + w)), step counted from the end of a w-step warm-up: with the Warmup
    ramp this is Vaswani et al.'s schedule, min(step / w, sqrt(w / step)) * peak."""

    def __init__(self, peak, warmup_steps):
        self.peak = peak
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        w = float(max(self.warmup_steps, 1))
        return self.peak * keras.ops.sqrt(w / (keras.ops.cast(step, "float32") + w))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


def learning_rate(cfg, steps_per_epoch, lr_factor=1.0):
    lr = cfg.learning_rate * lr_factor
    s = keras.optimizers.schedules
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = max(cfg.epochs * steps_per_epoch - warmup, 1)
    if cfg.schedule == "constant":
        schedule = s.PolynomialDecay(lr, total, lr)  # a constant that is still a schedule object
    elif cfg.schedule == "step":
        every = cfg.step_epochs * steps_per_epoch
        boundaries = [every * k for k in range(1, max(cfg.epochs // max(cfg.step_epochs, 1), 1) + 1)]
        schedule = s.PiecewiseConstantDecay(boundaries, [lr / 10**k for k in range(len(boundaries) + 1)])
    elif cfg.schedule == "exponential":
        schedule = s.ExponentialDecay(lr, steps_per_epoch, cfg.decay_rate)
    elif cfg.schedule == "linear":  # word2vec's decay, to min_learning_rate at the last step
        schedule = s.PolynomialDecay(lr, total, cfg.min_learning_rate * lr_factor)
    elif cfg.schedule == "inverse_sqrt":
        schedule = InverseSqrt(lr, warmup)
    elif cfg.schedule == "cosine":
        schedule = s.CosineDecay(lr, total)
    else:
        raise UserError(f"unknown schedule {cfg.schedule!r}")
    return Warmup(schedule, warmup) if warmup else schedule


def make_optimizer(cfg, steps_per_epoch, lr_factor=1.0):
    lr = learning_rate(cfg, steps_per_epoch, lr_factor)
    common = dict(learning_rate=lr, clipnorm=cfg.clipnorm, weight_decay=cfg.weight_decay or None,
                  gradient_accumulation_steps=cfg.grad_accum_steps if cfg.grad_accum_steps > 1 else None)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=cfg.momentum, nesterov=True, **common)
    if cfg.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(momentum=cfg.momentum, **common)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(**common)
    raise UserError(f"unknown optimizer {cfg.optimizer!r}")
