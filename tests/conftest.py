"""Shared test helpers: a quiet TensorFlow, the CLI in a subprocess, tiny image folders."""
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--batch_size", "32", "--data.limit", "640", "--learning_rate", "0.003", "--model.width", "8", "--model.depth", "1",
        "--verbose", "line"]


def run_cli(*args, cwd=None, env=None, timeout=600, check=True):
    """Run `python -m apps ...` in a fresh process; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "apps", *map(str, args)], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def make_class_folder(root, classes=("cat", "dog", "frog"), per_class=12, size=(20, 24), seed=0):
    """A folder of class sub-folders with small random JPEG/PNG images whose colour depends on the class."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((*size, 3), np.uint8) + np.array([80 * c, 255 - 80 * c, 128], np.uint8)
            pixels = np.clip(base + rng.integers(-30, 30, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(d / f"{i:03d}.{'jpg' if i % 2 else 'png'}")
    return root


@pytest.fixture
def class_folder(tmp_path):
    return make_class_folder(tmp_path / "images")
