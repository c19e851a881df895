"""Runs that cannot be destroyed: a resume restores only what fits (or refuses before writing a byte),
an unreadable checkpoint is skipped for an older one, one trainer per run directory, finite checkpoints
only, and run files that survive a full disk, a read-only folder and a damaged model.keras."""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.core import files as run_files
from apps.core.checkpoints import TrainingState, fingerprint, model_variables, saved_fingerprint
from apps.core.errors import TrainingDiverged
from apps.image_classification.app import ImageClassification
from tests.conftest import TINY, last_line, run_main, run_ok

APP = "image_classification"


def snapshot(folder):
    """{relative path: (bytes, mtime)} of every file under `folder` but the lock (which a trainer holds)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != run_files.LOCK_NAME}


def assert_one_line_error(result, code, *words):
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    line = last_line(result.stderr)
    for word in words:
        assert str(word) in line, line
    return line


@pytest.fixture(scope="module")
def _trained_once(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    run_ok(APP, "train", "--run_dir", run, *TINY)
    return run


@pytest.fixture
def trained(_trained_once, tmp_path):
    """A finished one-epoch run, this test's own copy (trained once for the module: the tests change it)."""
    return Path(shutil.copytree(_trained_once, tmp_path / "run"))


@pytest.mark.parametrize("flags, words", [
    (["--model.width", "16"], ["model differs", "is (", "there", "now"]),  # same variables, other shapes
    (["--model.arch", "vgg"], ["model differs"]),  # other variables
])
def test_a_model_that_does_not_fit_is_refused_before_anything_is_written(trained, flags, words):
    before = snapshot(trained)
    result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2", *flags)
    line = assert_one_line_error(result, 2, str(trained), "holds an image_classification run whose", *words, "--run_dir")
    assert line.count(";") <= 2 and "\n" not in line
    assert snapshot(trained) == before  # config.json, state.json, run.json, checkpoints, model.keras, history.csv


def test_another_apps_run_directory_is_refused_before_anything_is_written(trained, tmp_path):
    before = snapshot(trained)
    result = run_main("word_embeddings", "train", "--run_dir", trained, "--epochs", "1")
    assert_one_line_error(result, 2, f"{trained} holds an image_classification run, not word_embeddings")
    assert snapshot(trained) == before


@pytest.mark.parametrize("keep", ["model.keras", "checkpoints", "both"])
def test_a_run_without_run_json_is_refused_before_anything_is_written(trained, keep):
    """A run from before run.json cannot be checked against the flags: training must not overwrite it."""
    (trained / "run.json").unlink()
    if keep == "model.keras":
        for path in (trained / "checkpoints").iterdir():
            path.unlink()
    elif keep == "checkpoints":
        (trained / "model.keras").unlink()
    before = snapshot(trained)
    result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    there = {"model.keras": "model.keras but", "checkpoints": "1 checkpoint(s) but",
             "both": "model.keras and 1 checkpoint(s) but"}[keep]
    assert_one_line_error(result, 2, f"{trained} holds {there} no run.json", "use another --run_dir",
                          "move model.keras and checkpoints/ out of")
    assert snapshot(trained) == before


@pytest.mark.parametrize("name", ["image_classification", "object_detection"])  # the apps with a split record
def test_only_the_chief_writes_the_run_directory(tmp_path, monkeypatch, name):
    """A worker that is not the chief writes its own folder (workers/worker-N) and nothing else: neither the
    split record (app.state() is the chief's) nor state.json."""
    from apps.core import runner
    from apps.core.registry import get_app

    example = get_app(name).smoke_example(tmp_path)
    monkeypatch.setattr(runner, "is_chief", lambda strategy: False)
    run = tmp_path / "run"
    run_ok(name, "train", "--run_dir", run, *example.train_flags, "--epochs", "1")
    written = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert written and all(p.startswith("workers/worker-0/") for p in written), sorted(written)
    assert not (run / "workers" / "worker-0" / "state.json").exists()
    assert list((run / "workers" / "worker-0" / "checkpoints").glob("*.index"))


def test_the_run_records_its_app_and_structure(trained):
    record = json.loads((trained / "run.json").read_text())
    assert record["app"] == APP and record["segment"] == {"from_epoch": 0, "from_step": 0, "until_epoch": 1}
    names = {name: shape for name, shape, _ in record["model"]}
    assert names["probabilities/kernel"][-1] == 10  # Fashion-MNIST's classes
    (key,) = record["optimizers"]
    assert key == "optimizer_0_train_adam" and ["iteration", [], "int64"] in record["optimizers"][key]


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    run = tmp_path / "run"
    run_ok(APP, "train", "--run_dir", run, *TINY, "--epochs", "2")
    newest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    (data,) = [p for p in (run / "checkpoints").iterdir() if p.name.startswith(os.path.basename(newest) + ".data")]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    result = run_ok(APP, "train", "--run_dir", run, *TINY, "--epochs", "2")
    assert f"warning: checkpoint {newest} cannot be read" in result.stderr
    assert "resuming from epoch 1, step 0" in result.stdout and "epochs 2..2" in result.stdout
    tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run / "checkpoints"))).get_variable_to_shape_map()


def test_no_readable_checkpoint_is_refused_rather_than_started_over(trained):
    for data in (trained / "checkpoints").glob("*.data-*"):
        data.write_bytes(b"")
    before = snapshot(trained)
    result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert_one_line_error(result, 2, "none of the 1 checkpoints in", "can be read")
    assert snapshot(trained) == before


def test_a_second_trainer_is_refused_and_a_dead_ones_lock_does_not_block(trained):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(trained / run_files.LOCK_NAME)!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.pwrite(fd, b'%d' % os.getpid(), 0)\n"
        "print('locked', flush=True); time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(trained)
        result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
        assert_one_line_error(result, 2, f"another process (pid {holder.pid}) is training in {trained}")
        assert snapshot(trained) == before
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel releases it
        holder.wait()
    result = run_ok(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert "resuming from epoch 1, step 0" in result.stdout


def test_a_non_finite_validation_loss_stops_and_keeps_the_last_checkpoint(trained, monkeypatch):
    original = ImageClassification.build_dataset

    def poisoned(self, split, epoch=0):
        dataset = original(self, split, epoch)
        return dataset.map(lambda x, y: (x * float("nan"), y)) if split == "val" else dataset

    before = tf.train.latest_checkpoint(str(trained / "checkpoints"))
    monkeypatch.setattr(ImageClassification, "build_dataset", poisoned)
    result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert_one_line_error(result, 3, "the validation loss became nan after epoch 2", "last good checkpoint is kept")
    assert tf.train.latest_checkpoint(str(trained / "checkpoints")) == before


def test_a_non_finite_training_loss_stops_and_keeps_the_last_checkpoint(trained):
    """In this process: no fresh process is needed to stop on NaN and resume from disk (no strategy, no
    --deterministic, which would stay set here)."""
    before = tf.train.latest_checkpoint(str(trained / "checkpoints"))
    proc = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2", "--learning_rate", "1e30")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "the training loss became nan" in last_line(proc.stderr) or "the training loss became inf" in last_line(proc.stderr)
    assert "Traceback" not in proc.stderr
    assert tf.train.latest_checkpoint(str(trained / "checkpoints")) == before
    tf.train.load_checkpoint(before)  # still readable
    resumed = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert resumed.returncode == 0 and "resuming from epoch 1, step 0" in resumed.stdout


def test_a_checkpoint_is_saved_only_when_every_variable_is_finite(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    state = TrainingState(tmp_path / "checkpoints", keep=3)
    state.attach(model, "optimizer_0_train_adam")
    state.save()
    good = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    kernel = model.get_layer("dense").kernel
    kernel.assign(np.full((3, 2), np.inf, np.float32))
    state.step.assign(1)
    with pytest.raises(TrainingDiverged, match="dense/kernel holds NaN or infinite values"):
        state.save()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) == good


def test_repeated_seed_paths_keep_the_fingerprint_runs_recorded(tmp_path):
    """Two dropout seeds at one path (numbered seed_generator_N per process, which keys leave out) are keyed
    path and path#N in a checkpoint; fingerprints, which run.json and the fit check compare, keep the bare
    path as runs recorded them, and a checkpoint's own fingerprint reads back equal."""
    inputs = keras.Input((3,))
    hidden = keras.layers.Dropout(0.2, name="first")(keras.layers.Dropout(0.1, name="second")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(hidden))
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    keys = list(model_variables(model))
    assert len([k for k in keys if "#" in k]) == 1 and not [k for k in keys if re.search(r"seed_generator_\d", k)]
    assert [name for name, _, _ in fingerprint(model)] == [
        re.sub(r"seed_generator_\d+", "seed_generator", v.path) for v in model.variables]
    state = TrainingState(tmp_path / "checkpoints", keep=1)
    state.attach(model, "optimizer_0_train_adam")
    state.save()
    saved = state.find()
    assert sorted(saved_fingerprint(saved, "optimizer_0_train_adam")[0]) == sorted(fingerprint(model))  # by name


def _raise_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["config.json", "checkpoint", "model.keras"])
def test_a_full_disk_ends_in_one_line_and_keeps_the_run(trained, monkeypatch, where):
    before = snapshot(trained)
    if where == "config.json":  # the first file a resumed run writes
        monkeypatch.setattr(os, "fsync", _raise_enospc)
        words = [f"cannot write {trained / 'config.json'}: No space left on device", "free some space"]
    elif where == "checkpoint":
        def full(*args, **kwargs):
            raise tf.errors.ResourceExhaustedError(None, None, "ckpt-x.data-00000-of-00001; No space left on device")
        monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
        words = [f"cannot save a checkpoint in {trained / 'checkpoints'}", "No space left on device",
                 "the last good checkpoint is kept"]
    else:
        monkeypatch.setattr(keras.Model, "save", _raise_enospc)
        words = [f"{trained / 'model.keras'}: No space left on device", "free some space"]
    result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert_one_line_error(result, 2, *words)
    after = snapshot(trained)
    if where == "config.json":  # nothing was written
        assert after == before
    for name, (content, _) in before.items():  # the checkpoints and the final model are the old ones, whole
        if name.startswith("checkpoints/") and where != "model.keras" or name == "model.keras":
            assert after[name][0] == content, name
    assert not list(trained.rglob(".tmp-*"))


class _FullDiskFile:
    """A text file on a disk that fills up halfway through the next write (as a real one does: part of the
    row reaches the file, then the flush fails with an OSError that names no file)."""

    def __init__(self, real):
        self.real = real

    def write(self, text):
        self.real.write(text[: len(text) // 2])
        self.real.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("where", ["history.csv", "logs, full", "logs, read-only"])
def test_logging_on_a_full_disk_or_read_only_folder_ends_in_one_line(trained, monkeypatch, where):
    """Issue 11: history.csv and TensorBoard's logs/: one line naming the path, exit 2, and nothing already
    saved is lost (the rows logged before, the checkpoints, model.keras); the run resumes afterwards."""
    before = snapshot(trained)
    if where == "history.csv":
        begin = keras.callbacks.CSVLogger.on_train_begin

        def on_train_begin(self, logs=None):
            begin(self, logs)
            self.csv_file = _FullDiskFile(self.csv_file)

        monkeypatch.setattr(keras.callbacks.CSVLogger, "on_train_begin", on_train_begin)
        words = [f"cannot write {trained / 'history.csv'}: No space left on device", "free some space"]
    elif where == "logs, full":
        def scalar(name, *args, **kwargs):  # what TensorFlow raises when an event file cannot be flushed
            raise tf.errors.ResourceExhaustedError(None, None, "{{function_node __wrapped__WriteSummary_device_/job:"
                                                   "localhost}} logs/train/events.out.tfevents.1.x.v2; No space left "
                                                   "on device\n\tFailed to flush 11 events [Op:WriteSummary]")
        monkeypatch.setattr(tf.summary, "scalar", scalar)
        words = [f"cannot write {trained / 'logs'}: No space left on device", "free some space"]
    else:
        def create_file_writer(logdir, *args, **kwargs):
            raise tf.errors.PermissionDeniedError(None, None, f"{logdir}; Read-only file system [Op:CreateSummaryFileWriter]")
        monkeypatch.setattr(tf.summary, "create_file_writer", create_file_writer)
        words = [f"cannot write {trained / 'logs'}: Read-only file system", "pass another --run_dir"]
    result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert_one_line_error(result, 2, *words)
    after = snapshot(trained)
    for name, (content, _) in before.items():
        if name.startswith("checkpoints/ckpt-1000000.") or name in ("model.keras", "history.csv"):
            assert after[name][0] == content, name  # whole: no half row in history.csv
    if where == "history.csv":  # the row comes before the epoch's checkpoint: that epoch is trained again
        assert tf.train.latest_checkpoint(str(trained / "checkpoints")).endswith("ckpt-1000000")
    monkeypatch.undo()
    run_ok(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    rows = (trained / "history.csv").read_text().splitlines()
    logged = ["0", "1"]  # a failed row is written when its epoch is trained again; TensorBoard's failure loses none
    assert rows[0].startswith("epoch,") and [r.split(",")[0] for r in rows[1:]] == logged


def test_a_full_disk_when_writing_metrics_ends_in_one_line(trained, monkeypatch):
    monkeypatch.setattr(os, "fsync", _raise_enospc)
    result = run_main(APP, "evaluate", "--run_dir", trained)
    assert_one_line_error(result, 2, f"cannot write {trained / 'eval' / 'metrics.json'}: No space left on device")
    assert not (trained / "eval" / "metrics.json").exists() and not list((trained / "eval").glob(".tmp-*"))


def test_a_full_disk_when_drawing_evaluation_pictures_names_the_folder(trained, monkeypatch):
    """A write that fails at a flush names no file: the message names the folder being written."""
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _raise_enospc)
    result = run_main(APP, "evaluate", "--run_dir", trained)
    assert_one_line_error(result, 2, f"{trained / 'eval'}: No space left on device", "free some space")


@pytest.fixture
def read_only(monkeypatch):
    """make(folder): `folder` becomes read-only. Root ignores file permissions, so there writes under it
    (os.open for writing, os.mkdir) fail with EROFS, as on a read-only mount."""
    made = []

    def make(folder):
        paths = [folder, *folder.rglob("*")]
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        made.extend(paths)
        if os.access(folder, os.W_OK):
            real_open, real_mkdir, inside = os.open, os.mkdir, str(folder) + os.sep

            def under(path):
                return os.path.abspath(os.fspath(path)).startswith(inside)

            def ro_open(path, flags, *args, **kwargs):
                if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(path):
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
                return real_open(path, flags, *args, **kwargs)

            def ro_mkdir(path, *args, **kwargs):
                if under(path):
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
                return real_mkdir(path, *args, **kwargs)

            monkeypatch.setattr(os, "open", ro_open)
            monkeypatch.setattr(os, "mkdir", ro_mkdir)

    yield make
    for p in made:
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_read_only_run_directory_ends_in_one_line(trained, read_only):
    read_only(trained)
    result = run_main(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert_one_line_error(result, 2, f"cannot write {trained / run_files.LOCK_NAME}", "pass another --run_dir")
    result = run_main(APP, "evaluate", "--run_dir", trained)
    assert_one_line_error(result, 2, f"{trained / 'eval'}", "pass another --run_dir")


def _without_config(path):
    """The .keras archive without its config.json (an interrupted copy, say)."""
    with zipfile.ZipFile(path) as z:
        entries = {name: z.read(name) for name in z.namelist() if name != "config.json"}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no config.json", "state.json"])
def test_a_damaged_model_keras_ends_in_one_line(trained, tmp_path, damage):
    path = trained / "model.keras"
    if damage == "garbage":
        path.write_bytes(b"not a zip file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "no config.json":
        _without_config(path)
    else:
        path = trained / "state.json"
        path.write_text('{"class_names": ["a", ')
    image = tmp_path / "x.png"
    tf.io.write_file(str(image), tf.io.encode_png(tf.zeros((28, 28, 1), tf.uint8)))
    for verb, extra in (("evaluate", []), ("predict", [image]), ("export", ["--export_dir", tmp_path / "exports"])):
        result = run_main(APP, verb, *extra, "--run_dir", trained)
        assert_one_line_error(result, 2, f"cannot {'read' if damage == 'state.json' else 'load'} {path}")


def test_a_run_copied_without_state_json_ends_in_one_line(trained, tmp_path):
    """model.keras and config.json alone: the class names and input shape the model was trained with are lost."""
    (trained / "state.json").unlink()
    image = tmp_path / "x.png"
    tf.io.write_file(str(image), tf.io.encode_png(tf.zeros((28, 28, 1), tf.uint8)))
    for verb, extra in (("evaluate", []), ("predict", [image]), ("export", ["--export_dir", tmp_path / "exports"])):
        result = run_main(APP, verb, *extra, "--run_dir", trained)
        assert_one_line_error(result, 2, f"{trained / 'state.json'} is missing", "copy the whole run folder")


def test_run_files_are_written_whole(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    run_files.atomic_write_text(target, "old\n")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        run_files.atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_temporaries_left_by_killed_saves_are_removed_at_the_next_start(trained):
    """A kill inside a save skips its `finally`: the next trainer (holding the lock) removes what is left."""
    leftovers = [trained / ".tmp-abc.keras", trained / "checkpoints" / "checkpoint.tmp77",
                 trained / "data" / ".tmp-splits.json-x"]
    for path in leftovers:
        path.write_bytes(b"half")
    (trained / "checkpoints" / "ckpt-1000003_temp").mkdir()
    (trained / "checkpoints" / "ckpt-1000003_temp" / "part-00000-of-00001").write_bytes(b"half")
    kept = trained / "notes.tmp"
    kept.write_text("mine")
    proc = run_ok(APP, "train", "--run_dir", trained, *TINY, "--epochs", "2")
    assert f"removed 4 temporary file(s) an interrupted save left in {trained}" in proc.stdout
    assert not any(p.exists() for p in leftovers) and not (trained / "checkpoints" / "ckpt-1000003_temp").exists()
    assert kept.read_text() == "mine" and "resuming from epoch 1, step 0" in proc.stdout


def test_an_epochs_last_step_is_saved_by_the_epoch_end_only():
    """A step save after an epoch's last batch would let a kill before the epoch end resume straight into the
    next epoch, skipping that epoch's validation and history row."""
    from apps.core.checkpoints import StepCheckpoint

    class State:
        epoch, step = tf.Variable(0), tf.Variable(0)
        saves = []

        def save(self):
            self.saves.append((int(self.epoch), int(self.step)))

    state = State()
    callback = StepCheckpoint(state, every_steps=2, steps_per_epoch=4)
    for epoch in range(2):
        for batch in range(4):
            callback.on_train_batch_end(batch)
        callback.on_epoch_end(epoch)
    assert state.saves == [(0, 2), (1, 0), (1, 2), (2, 0)]
