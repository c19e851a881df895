"""Learning-rate schedules and optimizers from a FitConfig."""
import keras
import numpy as np
import pytest

from apps.core.optim import Warmup, learning_rate, make_optimizer
from apps.core.run_config import FitConfig


def lr_at(schedule, step):
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_warmup_then_cosine_known_values():
    cfg = FitConfig(learning_rate=0.1, schedule="cosine", warmup_epochs=1, epochs=3)
    schedule = learning_rate(cfg, steps_per_epoch=10)
    assert isinstance(schedule, Warmup)
    np.testing.assert_allclose([lr_at(schedule, s) for s in (0, 4, 10, 20, 30)],
                               [0.01, 0.05, 0.1, 0.05, 0.0], atol=1e-6)


def test_step_and_exponential_and_constant():
    step = learning_rate(FitConfig(learning_rate=1.0, schedule="step", step_epochs=2, epochs=6), 5)
    np.testing.assert_allclose([lr_at(step, s) for s in (0, 10, 11, 21)], [1.0, 1.0, 0.1, 0.01], rtol=1e-6)
    expo = learning_rate(FitConfig(learning_rate=1.0, schedule="exponential", decay_rate=0.5), 4)
    np.testing.assert_allclose(lr_at(expo, 8), 0.25, rtol=1e-6)
    assert lr_at(learning_rate(FitConfig(learning_rate=0.3), 7), 1000) == pytest.approx(0.3)


def test_warmup_serialises():
    schedule = Warmup(keras.optimizers.schedules.ExponentialDecay(1.0, 10, 0.5), 5)
    again = Warmup.from_config(schedule.get_config())
    assert lr_at(again, 15) == pytest.approx(lr_at(schedule, 15))


@pytest.mark.parametrize("name, cls", [("sgd", keras.optimizers.SGD), ("rmsprop", keras.optimizers.RMSprop),
                                       ("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW)])
def test_optimizers(name, cls):
    opt = make_optimizer(FitConfig(optimizer=name, clipnorm=1.0, grad_accum_steps=2, weight_decay=1e-4), 10)
    assert isinstance(opt, cls) and opt.clipnorm == 1.0 and opt.gradient_accumulation_steps == 2
