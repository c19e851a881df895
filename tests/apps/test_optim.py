"""Learning-rate schedules and optimizers from a FitConfig."""
import keras
import numpy as np
import pytest

from apps.core.optim import Offset, Warmup, learning_rate, make_optimizer
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


def test_offset_counts_the_schedule_from_its_start_and_serialises():
    schedule = Offset(keras.optimizers.schedules.CosineDecay(0.1, 100), start=500)
    np.testing.assert_allclose([lr_at(schedule, s) for s in (0, 500, 550, 600)], [0.1, 0.1, 0.05, 0.0], atol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert lr_at(again, 550) == pytest.approx(0.05)


def test_which_stretch_of_the_run_a_command_follows():
    from apps.core.runner import _segment

    def stretch(from_epoch, from_step, until_epoch):
        return {"from_epoch": from_epoch, "from_step": from_step, "until_epoch": until_epoch}

    whole = stretch(0, 0, 10)
    assert _segment(None, 0, 0, 10) == whole  # a new run
    assert _segment(whole, 4, 7, 10) == whole  # resumed after a crash: the same curve
    assert _segment(whole, 10, 0, 10) == whole  # nothing left to train
    assert _segment(whole, 10, 0, 20) == stretch(10, 0, 20)  # extended: a new curve over the added epochs
    assert _segment(stretch(10, 0, 20), 15, 3, 20) == stretch(10, 0, 20)  # the extension resumed after a crash
    assert _segment(whole, 4, 7, 20) == stretch(4, 7, 20)  # another --epochs mid-run: a new curve from there
    assert _segment(None, 3, 0, 10) == whole  # a run from before run.json: one curve over its epochs


def _rates_of_training(run_dir, *flags):
    """The learning rate of every step of `train` with TINY flags on 432 images (12 steps an epoch: a cosine's
    last step is under 2% of its peak from 12 on) and `flags`, in `run_dir`."""
    from apps.__main__ import build_parser, resolve_config
    from apps.core import runner
    from apps.core.registry import get_app
    from tests.conftest import TINY

    class Rates(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rates = []

        def on_train_batch_begin(self, batch, logs=None):
            self.rates.append(float(self.model.optimizer.learning_rate))

    app_cls = get_app("image_classification")
    args = build_parser(app_cls, "train").parse_args([str(f) for f in ["--run_dir", run_dir, *TINY, "--data.limit", "432", *flags]])
    recorder = Rates()
    runner.train(app_cls(resolve_config(app_cls, "train", args)), extra_callbacks=[recorder])
    return recorder.rates


def test_extending_a_cosine_run_decays_again_over_the_added_epochs(tmp_path):
    """Not the middle of a 2-epoch curve (half the peak rate at the first added step): see optim.Offset."""
    first = _rates_of_training(tmp_path, "--schedule", "cosine", "--epochs", "1")
    added = _rates_of_training(tmp_path, "--schedule", "cosine", "--epochs", "2")
    assert len(first) == len(added) > 5
    assert first[0] == pytest.approx(0.003) and added[0] == pytest.approx(0.003)
    np.testing.assert_allclose(added, first, rtol=1e-5)
    assert added[-1] < 0.02 * 0.003 and all(a > b for a, b in zip(added, added[1:]))


def test_extending_a_step_schedule_follows_one_long_run(tmp_path):
    flags = ["--schedule", "step", "--step_epochs", "1"]
    straight = _rates_of_training(tmp_path / "straight", *flags, "--epochs", "2")
    extended = (_rates_of_training(tmp_path / "extended", *flags, "--epochs", "1")
                + _rates_of_training(tmp_path / "extended", *flags, "--epochs", "2"))
    np.testing.assert_allclose(extended, straight, rtol=1e-6)
    assert straight[-1] == pytest.approx(0.0003)
