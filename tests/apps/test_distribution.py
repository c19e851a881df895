"""MultiWorkerMirroredStrategy with two local worker processes (MirroredStrategy on two logical CPUs: every app's
round trip in test_every_app.py)."""
import json
import os
import socket
import subprocess
import sys
import time
import types

import pytest
import tensorflow as tf

from apps.core.config import apply_overrides
from apps.core.errors import UserError
from apps.core.app import fills_every_replica
from tests.conftest import ROOT, TINY, last_line, run_cli, run_main, run_python

APP = "image_classification"


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def checkpoint_loads(checkpoint_dir):
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    names = tf.train.load_checkpoint(latest).get_variable_to_shape_map()
    return latest and "model/stem.Sconv.Skernel/.ATTRIBUTES/VARIABLE_VALUE" in names  # "/" is escaped as ".S"


def train_workers(run_dir, *flags):
    """Train with two local multi-worker processes; [(process, output)] once both have ended."""
    workers = [f"localhost:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CONFIG": tf_config}
        procs.append(subprocess.Popen(
            # 80 images: 72 to train in 10 steps of an odd global batch (4 + 3), 8 to validate (4 + 3, then 1 + 0)
            [sys.executable, "-m", "apps", APP, "train", "--run_dir", str(run_dir), *TINY, "--data.limit", "80",
             "--batch_size", "7", "--strategy", "multi-worker", *map(str, flags)],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return [(p, p.communicate(timeout=600)[0]) for p in procs]


@pytest.mark.slow
def test_multi_worker_with_two_local_processes_and_workers_that_restored_different_positions(tmp_path):
    """Two local workers train (the chief's run directory, worker 1's own checkpoints), their replicas given
    batches of different sizes and a last validation batch too small for both; then worker 1 loses its
    checkpoints, and the next start stops both with one line instead of training from two positions."""
    for p, out in train_workers(tmp_path):  # replicas with batches of different sizes, one with none
        assert p.returncode == 0, out[-3000:]
        assert "CollectiveAllReduceStrategy with 2 replica(s)" in out
        assert "warning: validation leaves out its last batch of 1 example(s), too few for 2 replicas" in out
    assert checkpoint_loads(tmp_path / "checkpoints")  # the chief's
    assert checkpoint_loads(tmp_path / "workers" / "worker-1" / "checkpoints")  # worker 1's own
    assert (tmp_path / "model.keras").is_file() and not (tmp_path / "workers" / "worker-1" / "model.keras").exists()

    for path in (tmp_path / "workers" / "worker-1" / "checkpoints").iterdir():
        path.unlink()
    start = time.time()
    for proc, out in train_workers(tmp_path, "--epochs", "2"):
        assert proc.returncode == 2, out[-3000:]
        assert "the workers restored different training positions (worker 0 at epoch 1 step 0, worker 1 at epoch 0 " \
               "step 0)" in last_line(out), out[-3000:]
    assert time.time() - start < 300


def test_bad_tf_config_is_a_one_line_error(tmp_path, monkeypatch):
    """In this process: TF_CONFIG is checked before any strategy is made (a strategy would stay set here)."""
    monkeypatch.setenv("TF_CONFIG", "{oops")
    proc = run_main(APP, "train", "--run_dir", tmp_path, "--strategy", "multi-worker")
    assert proc.returncode == 2 and "TF_CONFIG must be JSON" in proc.stderr.strip().splitlines()[-1]


def test_mirrored_replicas_with_batches_of_different_sizes(tmp_path):
    """Two replicas in one process: an odd global batch (4 + 3 each step) and a last validation batch of one
    example (left out, said once: the empty replica batch failed in oneDNN's kernels)."""
    proc = run_cli(APP, "train", "--run_dir", tmp_path, *TINY, "--epochs", "2", "--data.limit", "80", "--batch_size", "7",
                   "--strategy", "mirrored", "--cpu_devices", "2")
    assert "MirroredStrategy with 2 replica(s); global batch 7" in proc.stdout
    assert proc.stdout.count("warning: validation leaves out its last batch of 1 example(s), too few for 2") == 1
    assert "ran out of data" not in proc.stdout + proc.stderr
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 3


def test_a_batch_that_leaves_a_replica_empty_is_refused(tmp_path):
    proc = run_cli(APP, "train", "--run_dir", tmp_path, *TINY, "--batch_size", "4", "--strategy", "mirrored",
                   "--cpu_devices", "3", check=False)
    assert proc.returncode == 2 and last_line(proc.stderr) == (
        "error: a global batch of 4 leaves a replica of the 3 without examples (each takes 2 in turn); use a multiple "
        "of 3, e.g. --batch_size 6")
    assert not (tmp_path / "config.json").exists()


def test_replicas_are_filled_in_turn():
    assert [n for n in range(1, 10) if not fills_every_replica(n, 3)] == [1, 2, 4]  # 1+0+0, 1+1+0, 2+2+0
    assert all(fills_every_replica(n, 2) for n in range(2, 40)) and not fills_every_replica(1, 2)
    for replicas in range(2, 9):  # the bound the translation advice relies on
        assert all(fills_every_replica(n, replicas) for n in range(replicas * (replicas - 1), 200))


def _refusal(app_cls, replicas, **overrides):
    config = apply_overrides(app_cls.Config(), overrides)
    try:
        app_cls.check_replicas(types.SimpleNamespace(config=config, train_batch_size=lambda: config.batch_size),
                               replicas)
    except UserError as e:
        return str(e)


def test_translation_batches_of_every_bucket_length_must_feed_every_replica():
    """Token batches: a bucket of length L holds --batch_size // L pairs. 4096 tokens at lengths up to 128 make
    34 pairs at length 120, 5 + 5 + ... + 4 + 0 on eight replicas."""
    from apps.transformer_translation.app import TransformerTranslationApp as TransformerApp

    assert _refusal(TransformerApp, 2) is None and _refusal(TransformerApp, 8) is None  # 4096 tokens, length <= 40
    assert _refusal(TransformerApp, 2, **{"batch_size": "32"}) == (
        "--batch_size 32 tokens makes batches of 1 sentence pairs (at length --data.max_length 40 or below), which "
        "leaves one of the 2 replicas without any; use --batch_size 80 or more")
    message = _refusal(TransformerApp, 8, **{"data.max_length": "128"})
    assert message.startswith("--batch_size 4096 tokens makes batches of 34 sentence pairs") and message.endswith(
        "use --batch_size 7168 or more")
    assert _refusal(TransformerApp, 8, **{"data.max_length": "128", "batch_size": "7168"}) is None


def test_face_batches_give_every_replica_whole_identities():
    from apps.face_verification.app import FaceVerification as FaceApp

    assert _refusal(FaceApp, 2) is None  # P = 8
    assert _refusal(FaceApp, 3) == (
        "--data.identities_per_batch 8 on 3 replicas: each replica mines triplets in its own share of the batch and "
        "needs whole identities, two at least; use a multiple of 3, e.g. --data.identities_per_batch 9 (x 4 images "
        "each)")
    assert "e.g. --data.identities_per_batch 16" in _refusal(FaceApp, 8)


def test_cpu_devices_once_tensorflow_has_started_are_a_one_line_error(tmp_path):
    """In this process (a notebook's situation): its devices started long ago, so they cannot be split."""
    tf.constant(1.0) + 1.0
    proc = run_main(APP, "train", "--run_dir", tmp_path, *TINY, "--cpu_devices", "3")
    assert proc.returncode == 2 and last_line(proc.stderr) == (
        "error: --cpu_devices 3 needs a fresh process: TensorFlow has already started its devices in this one "
        "(run the command in a new process)")


def test_the_same_cpu_devices_again_in_one_process_are_kept(tmp_path):
    """A second command in one process (a notebook) asking for the devices already set goes on."""
    script = ("import tensorflow as tf\nfrom apps.core.strategy import split_cpu\nsplit_cpu(2)\ntf.constant(1.0) + 1.0\n"
              "split_cpu(2)\nprint(len(tf.config.list_logical_devices('CPU')))")
    assert run_python("-c", script).stdout.split()[-1] == "2"
