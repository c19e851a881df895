"""Crash safety: kill -9 at any moment (saves included), resume to the same weights (a NaN loss stopping cleanly:
test_run_safety.py)."""
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import layers  # noqa: F401  (registers the custom layers for loading)
from tests.conftest import ROOT, TINY, run_cli, run_cli_calls

APP = "image_classification"
RUN = [*TINY, "--epochs", "3", "--seed", "5", "--deterministic", "true", "--model.dropout", "0.2",
       "--data.color_jitter", "0.1"]


def final_weights(run_dir):
    return keras.saving.load_model(run_dir / "model.keras").get_weights()


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def latest_checkpoint(run_dir):
    return tf.train.latest_checkpoint(str(run_dir / "checkpoints"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """RUN trained straight through in a fresh process (what every resumed run must equal), and the same process
    then trains RUN's first epoch alone into another folder: a run trained after another in one process, as in a
    notebook, which a fresh process then extends (its checkpoint keys must not depend on what came before)."""
    folder = tmp_path_factory.mktemp("runs")
    run_cli_calls([APP, "train", "--run_dir", folder / "straight", *RUN],
                  [APP, "train", "--run_dir", folder / "short", *RUN, "--epochs", "1"])
    return final_weights(folder / "straight"), folder / "short"


@pytest.fixture(scope="module")
def uninterrupted(runs):
    return runs[0]


def test_extending_a_finished_run_equals_one_long_run(runs, uninterrupted):
    short = runs[1]
    proc, again = run_cli_calls([APP, "train", "--run_dir", short, *RUN], [APP, "train", "--run_dir", short, *RUN])
    assert "resuming from epoch 1, step 0" in proc
    assert "already has 3 epochs" in again
    assert_same_weights(uninterrupted, final_weights(short))  # extended as one long run, then not re-initialised


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    """Checkpoint every step so that kills land inside saves too; two kills, then finish (the second kill lands
    about 24 of RUN's 54 steps in: a step with its save takes ~0.1 s, the kills come 1.3 s and 1.1 s after a
    start's first save)."""
    args = [sys.executable, "-m", "apps", APP, "train", "--run_dir", str(tmp_path / "killed"), *RUN,
            "--checkpoint_every_steps", "1", "--keep_checkpoints", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(0)
    kills = 0
    for _ in range(2):
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = latest_checkpoint(tmp_path / "killed")
        deadline = time.time() + 120
        while latest_checkpoint(tmp_path / "killed") == start and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 2, "training finished before it could be killed; make the run longer"
    resumed = run_cli(APP, "train", "--run_dir", tmp_path / "killed", *RUN)  # step saves change no weight
    assert "resuming from epoch" in resumed.stdout
    assert_same_weights(uninterrupted, final_weights(tmp_path / "killed"))

