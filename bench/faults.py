"""Fault figures (issue 11): kill -9 during training and resume; bad requests to every SavedModel.

    .venv/bin/python bench/faults.py --kills 2                 # a quick look, ~8 min for five apps
    .venv/bin/python bench/faults.py --readme --json F.json    # 20 kills per app (~17 min), figures into bench/README.md
    .venv/bin/python bench/faults.py --render F.json --readme  # the README section again from a measurement

For every registered app (`list_apps()`), from what the app declares beside its code
(`smoke_example`: tiny training flags, a predict input, a serving request), so a new app is covered
without editing this script:

1. Kill and resume. The smoke flags, with `--deterministic true`, `--checkpoint_every_steps 1` and
   enough epochs for `--min_steps` optimizer steps (a run at the smoke epochs learns the steps per
   epoch), train once uninterrupted (the reference, keeping every checkpoint), then again in another run
   directory where `--kills` runs of the same command are each killed with SIGKILL and the next one
   resumes. Kill moments: inside a checkpoint save (the watcher sees `ckpt-N_temp` or
   `checkpoint.tmp*` appear in checkpoints/ and kills 0-6 ms later), at a random moment between
   steps, at a random moment of start-up (imports, data preparation, run files), and once inside the
   final `model.keras` save (`.tmp-*.keras`). The targets are spread over the whole run. A last run
   of the same command finishes it.
   Counted: failed resumes (a non-zero exit we did not cause, a traceback, a one-line refusal, a run
   that starts over although a checkpoint exists), fallbacks to an older checkpoint than the newest
   listed one, repeated or skipped optimizer steps, and weight differences.
   Steps are read from the checkpoints, not the logs: a checkpoint holds, in one atomic save, the data
   position (`epoch`, `step`; its number is epoch x 1,000,000 + step) and the optimizer's own update
   counter (`iterations`, incremented once per applied update). The reference run keeps a checkpoint
   at every position, so every checkpoint the killed run leaves (read after each of its processes
   ends) is compared with the reference's at the same position: the update counter (ahead = an
   update applied twice, behind = one lost) and every variable (weights, optimizer slots, seeds).
   history.csv cannot do this (one row per epoch, appended by whichever process ends the epoch).
   Final weights: every array of model.keras (its model.weights.h5) against the reference's. Also
   reported: history.csv rows lost or repeated against the reference's, and temporary files (of saves
   cut short) left in the run directory after the last resume.
2. Bad requests. The reference run is exported once (`python -m apps <app> export`), and a clean
   process (`python -I`, which imports only TensorFlow and the app's `serving_imports`; it checks that
   no project package was imported) sends every signature a fixed set of bad requests built from the
   app's example request: random bytes, truncated files, headers claiming 20,000 x 20,000 pixels
   (PNG, JPEG, GIF, BMP, WebP), wrong dtype and rank, an empty batch, invalid UTF-8, empty and very
   long text. Each request runs in the worker process; if the process dies or hangs, the request is
   counted as a crash and a new worker goes on with the next one. Counted: answers that are not an
   InvalidArgumentError naming the input (and, for a bad element in a batch, its index), results not
   documented by the app's serving docstring, crashes/hangs, and requests that grew the process by
   more than 500 MB. Two requests beyond the issue's list (a JPEG and a PNG damaged in the middle, which
   the guards cannot see before decoding) are reported apart and not counted.
"""
import argparse
import datetime
import io
import json
import math
import os
import pickle
import platform
import queue
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CKPT_FACTOR = 1_000_000  # a checkpoint's number: epoch x 1,000,000 + step (apps.core.checkpoints)
PROJECT = ("apps", "layers", "data", "backbones")
RSS_LIMIT_MB = 500


# ---------------------------------------------------------------------------------------------
# 1. Kill and resume
# ---------------------------------------------------------------------------------------------

def with_flags(flags, **overrides):
    """`flags` with --key value pairs replaced or added (keys spelled with dots: pass them in a dict)."""
    flags = list(flags)
    for key, value in overrides.items():
        if f"--{key}" in flags:
            flags[flags.index(f"--{key}") + 1] = str(value)
        else:
            flags += [f"--{key}", str(value)]
    return flags


def checkpoint_numbers(run_dir):
    """(newest, all) checkpoint numbers listed in checkpoints/checkpoint (TensorFlow renames it into place)."""
    try:
        text = (Path(run_dir) / "checkpoints" / "checkpoint").read_text()
    except OSError:
        return None, []
    number = lambda line: int(re.search(r"ckpt-(\d+)", line).group(1))  # noqa: E731
    newest = [number(l) for l in text.splitlines() if l.startswith("model_checkpoint_path")]
    every = [number(l) for l in text.splitlines() if l.startswith("all_model_checkpoint_paths")]
    return (newest[0] if newest else None), every


def position(number, steps_per_epoch):
    return (number // CKPT_FACTOR) * steps_per_epoch + number % CKPT_FACTOR


def in_save_names(run_dir):
    """Names that exist only while a checkpoint or the final model is being written."""
    names = set()
    ckpts = Path(run_dir) / "checkpoints"
    try:
        names |= {f"checkpoints/{n}" for n in os.listdir(ckpts) if n.endswith("_temp") or n.startswith("checkpoint.tmp")}
    except OSError:
        pass
    try:
        names |= {n for n in os.listdir(run_dir) if n.startswith(".tmp-")}
    except OSError:
        pass
    return names


def unlisted_checkpoints(run_dir):
    """ckpt-N.index files on disk that checkpoints/checkpoint does not list (a save cut before its listing)."""
    _, listed = checkpoint_numbers(run_dir)
    try:
        names = os.listdir(Path(run_dir) / "checkpoints")
    except OSError:
        return set()
    on_disk = {int(m.group(1)) for n in names if (m := re.fullmatch(r"ckpt-(\d+)\.index", n))}
    return on_disk - set(listed)


LIVE = set()  # the process groups this script started and has not seen end (killed if it is stopped)


def stop_live():
    for pid in list(LIVE):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Trainer:
    """`python -m apps <app> train --run_dir RUN FLAGS` in a fresh process (its own session, so that the
    kill reaches nothing but what it started), output to files."""

    def __init__(self, app, run_dir, flags, cwd, log):
        self.app, self.run_dir, self.flags, self.cwd, self.log = app, Path(run_dir), flags, cwd, Path(log)

    def start(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.out, self.err = open(f"{self.log}.out", "w"), open(f"{self.log}.err", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "apps", self.app, "train", "--run_dir", str(self.run_dir),
                                      *self.flags], cwd=self.cwd, env=env, stdout=self.out, stderr=self.err,
                                     start_new_session=True)
        LIVE.add(self.proc.pid)
        self.started = time.monotonic()
        return self

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group of the session this Popen created
        except ProcessLookupError:
            pass

    def wait(self):
        rc = self.proc.wait()
        LIVE.discard(self.proc.pid)
        self.out.close()
        self.err.close()
        return rc

    def texts(self):
        return Path(f"{self.log}.out").read_text(errors="replace"), Path(f"{self.log}.err").read_text(errors="replace")


def run_watched(trainer, timeout):
    """Run to the end, recording when each checkpoint number was first listed (seconds from start)."""
    trainer.start()
    seen = {}
    while trainer.proc.poll() is None:
        newest, _ = checkpoint_numbers(trainer.run_dir)
        if newest is not None and newest not in seen:
            seen[newest] = time.monotonic() - trainer.started
        if time.monotonic() - trainer.started > timeout:
            trainer.kill()
        time.sleep(0.005)
    rc = trainer.wait()
    return rc, seen, time.monotonic() - trainer.started


# Left out of comparisons: the object graph, and tf.train.Checkpoint's count of its own saves, which is
# bookkeeping, not training: a run resumed from the checkpoint of an epoch's last step goes straight on
# to the next epoch, without the (same-position) epoch-end save the uninterrupted run made, and counts one
# save fewer from then on.
NOT_TRAINING = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")


def read_checkpoint(prefix):
    """{key: numpy array} of every tensor of a checkpoint that training state is made of (see NOT_TRAINING)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k not in NOT_TRAINING}


def iterations(tensors):
    """The optimizer's update counter: variable 0 of the optimizer entry (Keras creates `iterations` first)."""
    keys = [k for k in tensors if re.fullmatch(r"optimizer_[^/]+/0/\.ATTRIBUTES/VARIABLE_VALUE", k)]
    return int(sum(int(tensors[k]) for k in keys)) if keys else None


def max_abs_difference(a, b):
    """(max abs difference over every common array, names only in one, names that differ)."""
    worst, differing = 0.0, []
    for key in sorted(set(a) & set(b)):
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape:
            differing.append(key)
            worst = math.inf
        elif x.dtype.kind in "fiub":
            d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
            if not d == 0.0:  # NaN counts as a difference
                differing.append(key)
                worst = max(worst, d) if not math.isnan(d) else math.inf
        elif not np.array_equal(x, y):
            differing.append(key)
            worst = math.inf
    return worst, sorted(set(a) ^ set(b)), differing


def keras_weights(path):
    """{dataset path: array} of every weight in a .keras file (its model.weights.h5), without building the model."""
    import h5py

    with zipfile.ZipFile(path) as z:
        data = z.read("model.weights.h5")
    weights = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda name, obj: weights.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return weights


class CheckpointAudit:
    """Compares every checkpoint a killed run leaves with the reference's at the same position."""

    def __init__(self, reference_dir):
        self.reference_dir = Path(reference_dir)
        self.done = {}  # (number, mtime, size) -> result
        self.compared = self.differing = self.repeated = self.skipped = self.mislabelled = 0
        self.unreadable_listed = []
        self.no_reference = []
        self.details = []  # the checkpoints that differ
        self.worst = 0.0

    def scan(self, run_dir):
        folder = Path(run_dir) / "checkpoints"
        _, listed = checkpoint_numbers(run_dir)
        if not folder.is_dir():
            return
        for name in sorted(os.listdir(folder)):
            m = re.fullmatch(r"ckpt-(\d+)\.index", name)
            if not m:
                continue
            n = int(m.group(1))
            st = (folder / name).stat()
            key = (n, st.st_mtime_ns, st.st_size)
            if key in self.done:
                continue
            try:
                mine = read_checkpoint(folder / f"ckpt-{n}")
            except Exception as e:  # noqa: BLE001 (a save cut short; a fault only if the listing names it)
                self.done[key] = "unreadable"
                if n in listed:
                    self.unreadable_listed.append(f"ckpt-{n}: {str(e).splitlines()[0][:200]}")
                continue
            ref_prefix = self.reference_dir / "checkpoints" / f"ckpt-{n}"
            if not Path(f"{ref_prefix}.index").is_file():
                self.no_reference.append(n)
                self.done[key] = "no reference"
                continue
            ref = read_checkpoint(ref_prefix)
            self.compared += 1
            epoch, step = int(mine.get("epoch/.ATTRIBUTES/VARIABLE_VALUE", -1)), int(mine.get("step/.ATTRIBUTES/VARIABLE_VALUE", -1))
            if epoch * CKPT_FACTOR + step != n:
                self.mislabelled += 1
            delta = (iterations(mine) or 0) - (iterations(ref) or 0)
            self.repeated += max(delta, 0)
            self.skipped += max(-delta, 0)
            worst, only, differing = max_abs_difference(mine, ref)
            if only or differing or delta:
                self.differing += 1
                self.details.append({"checkpoint": n, "iterations_delta": delta, "max_abs_diff": worst,
                                     "only_one_side": only[:5], "differing": differing[:5]})
            self.worst = max(self.worst, worst if not only else math.inf)
            self.done[key] = {"iterations_delta": delta, "max_abs_diff": worst, "only_one_side": only[:5],
                              "differing": differing[:5]}


def history_epochs(run_dir):
    """The epoch column of history.csv (one row per finished epoch, appended by the process that ends it)."""
    try:
        lines = (Path(run_dir) / "history.csv").read_text().splitlines()
    except OSError:
        return []
    return [int(line.split(",")[0]) for line in lines[1:] if line.split(",")[0].isdigit()]


def plan_kills(kills, total_steps, rng):
    """[(mode, target position)]: save / step kills spread over the run, start-up kills, the final save last."""
    cycle = ["save", "step", "save", "step", "start"]
    modes = [cycle[i % len(cycle)] for i in range(kills - 1)] + ["final"] if kills > 1 else ["save"]
    progress = [i for i, m in enumerate(modes) if m in ("save", "step")]
    plan = []
    for i, mode in enumerate(modes):
        target = 0
        if mode in ("save", "step"):
            j = progress.index(i)
            target = max(1, min(total_steps - 1, int(total_steps * (j + rng.random()) / len(progress))))
        elif mode == "final":
            target = total_steps
        plan.append((mode, target))
    return plan


def kill_attempt(trainer, mode, target, steps_per_epoch, timing, rng, timeout):
    """Start `trainer`, kill it at the planned moment; returns a record of what happened."""
    run_dir = trainer.run_dir
    before_newest, _ = checkpoint_numbers(run_dir)
    before_names = in_save_names(run_dir)
    before_unlisted = unlisted_checkpoints(run_dir)
    trainer.start()
    delay = {"start": rng.uniform(0.0, timing["first_checkpoint"]), "step": rng.uniform(0.0, 2 * timing["step"]),
             "save": rng.uniform(0.0, 0.006), "final": rng.uniform(0.0, 0.01)}[mode]
    kill_at = None
    armed_names = None
    killed = hung = False
    while trainer.proc.poll() is None:
        now = time.monotonic()
        if now - trainer.started > timeout:
            trainer.kill()
            hung = True
            break
        if kill_at is None:
            if mode == "start":
                kill_at = trainer.started + delay
            else:
                newest, _ = checkpoint_numbers(run_dir)
                reached = newest is not None and position(newest, steps_per_epoch) >= target
                if mode == "step" and reached and newest != before_newest:  # this process is training
                    kill_at = now + delay
                elif mode in ("save", "final"):
                    if armed_names is None and (reached or mode == "final"):
                        armed_names = in_save_names(run_dir)  # wait for a save that starts after this
                    if armed_names is not None:
                        fresh = in_save_names(run_dir) - armed_names
                        final_save = {n for n in fresh if n.startswith(".tmp-") and n.endswith(".keras")}
                        wanted = final_save if mode == "final" else {n for n in fresh if n.startswith("checkpoints/")}
                        if wanted:
                            kill_at = now + delay
        if kill_at is not None and now >= kill_at:
            trainer.kill()
            killed = True
            break
        time.sleep(0.0005)
    killed_after = time.monotonic() - trainer.started
    rc = trainer.wait()
    out, err = trainer.texts()
    evidence = sorted((in_save_names(run_dir) - before_names)
                      | {f"unlisted ckpt-{n}" for n in unlisted_checkpoints(run_dir) - before_unlisted})
    return judge(mode, target, rc, killed and rc == -signal.SIGKILL, hung, out, err, before_newest,
                 killed_after, evidence)


def judge(mode, target, rc, killed, hung, out, err, before_newest, seconds, evidence=()):
    """A record of one process: did it resume from the newest listed checkpoint, did it fail by itself?"""
    m = re.search(r"resuming from epoch (\d+), step (\d+)", out)
    resumed = int(m.group(1)) * CKPT_FACTOR + int(m.group(2)) if m else None
    started_training = "phase '" in out or "the run already has" in out
    problems = []
    if hung:
        problems.append(f"no exit within the timeout (killed after {seconds:.0f} s)")
    elif not killed and rc != 0:
        problems.append(f"exit {rc}")
    if "Traceback" in err:
        problems.append("traceback")
    refusals = [line for line in err.splitlines() if line.startswith("error:")]
    if refusals:
        problems.append(refusals[-1][:300])
    if before_newest is not None and started_training and resumed is None:
        problems.append(f"started over although ckpt-{before_newest} exists")
    fallback = resumed is not None and before_newest is not None and resumed != before_newest
    return {"mode": mode, "target": target, "rc": rc, "killed": killed, "seconds": round(seconds, 2),
            "expected_from": before_newest, "resumed_from": resumed, "fallback": fallback,
            "unreadable_warnings": [l for l in err.splitlines() if "cannot be read" in l][:3],
            "in_save_evidence": list(evidence), "problems": problems,
            "stderr_tail": err.strip().splitlines()[-3:] if problems else []}


def kill_and_resume(name, example, work, args, rng, say):
    """Probe, reference, kills, finish, audit; returns the app's figures."""
    from apps.core.registry import get_app

    app_cls = get_app(name)
    cwd = work
    base = with_flags(example.train_flags, **{"deterministic": "true", "seed": args.seed, "verbose": "line",
                                              "checkpoint_every_steps": 1})
    # Reference: uninterrupted, every checkpoint kept (retention does not touch training). The first one, at
    # the smoke epochs, tells the steps per epoch; if the run is too short for the kills, it runs again longer.
    smoke_epochs = int(example.train_flags[example.train_flags.index("--epochs") + 1]) if "--epochs" in example.train_flags else 1
    epochs = smoke_epochs
    for attempt in range(2):
        flags = with_flags(base, epochs=epochs)
        folder = work / "reference"
        ref = Trainer(name, folder, with_flags(flags, keep_checkpoints=100_000), cwd, work / f"reference-{attempt}")
        rc, seen, ref_seconds = run_watched(ref, args.timeout)
        if rc != 0:
            raise RuntimeError(f"{name}: the reference run failed (exit {rc}): {ref.texts()[1][-2000:]}")
        _, listed = checkpoint_numbers(ref.run_dir)
        steps_per_epoch = max([n for n in listed if n < CKPT_FACTOR] or [1])
        needed = max(smoke_epochs, math.ceil(args.min_steps / steps_per_epoch))
        if needed == epochs:
            break
        shutil.rmtree(folder)  # too short for the kills: again, longer
        epochs = needed
    total = epochs * steps_per_epoch
    times = sorted(seen.values())
    timing = {"first_checkpoint": times[0] if times else ref_seconds,
              "step": (times[-1] - times[0]) / max(len(times) - 1, 1) if len(times) > 1 else 0.1}
    say(f"  {steps_per_epoch} steps per epoch; {epochs} epochs = {total} steps; reference {ref_seconds:.1f} s "
        f"(first checkpoint at {timing['first_checkpoint']:.1f} s, {timing['step'] * 1000:.0f} ms per checkpoint)")

    # The killed run: the same command each time (retention 2: every save also deletes one).
    killed_flags = with_flags(flags, keep_checkpoints=2)
    audit = CheckpointAudit(ref.run_dir)
    records = []
    for i, (mode, target) in enumerate(plan_kills(args.kills, total, rng)):
        trainer = Trainer(name, work / "killed", killed_flags, cwd, work / f"killed-{i:02d}")
        record = kill_attempt(trainer, mode, target, steps_per_epoch, timing, rng, args.timeout)
        records.append(record)
        audit.scan(trainer.run_dir)
        newest, _ = checkpoint_numbers(trainer.run_dir)
        say(f"  kill {i + 1:2d}/{args.kills} {mode:5s} target {target:4d}: "
            f"{'killed' if record['killed'] else 'exit ' + str(record['rc'])} after {record['seconds']:.1f} s, "
            f"resumed from {record['resumed_from']}, newest now {newest}"
            + (f", in a save: {', '.join(record['in_save_evidence'])}" if record["in_save_evidence"] else "")
            + (f"  PROBLEM: {record['problems']}" if record["problems"] else ""))
    last = Trainer(name, work / "killed", killed_flags, cwd, work / "killed-final")
    before_newest, _ = checkpoint_numbers(last.run_dir)
    rc, _, seconds = run_watched(last, args.timeout)
    out, err = last.texts()
    final = judge("finish", total, rc, False, False, out, err, before_newest, seconds)
    records.append(final)
    audit.scan(last.run_dir)
    say(f"  finish: exit {rc} after {seconds:.1f} s, resumed from {final['resumed_from']}"
        + (f"  PROBLEM: {final['problems']}" if final["problems"] else ""))

    # Final weights, every array of model.keras, and the last checkpoints (optimizer slots included).
    final_diff = {"max_abs_diff": math.inf, "arrays": 0, "differing": ["no model.keras"]}
    if (last.run_dir / "model.keras").is_file():
        a, b = keras_weights(last.run_dir / "model.keras"), keras_weights(ref.run_dir / "model.keras")
        worst, only, differing = max_abs_difference(a, b)
        final_diff = {"max_abs_diff": worst if not only else math.inf, "arrays": len(b), "differing": only + differing}
    newest_killed, _ = checkpoint_numbers(last.run_dir)
    newest_ref, _ = checkpoint_numbers(ref.run_dir)
    final_iterations = None
    if newest_killed is not None and newest_ref is not None:
        final_iterations = (iterations(read_checkpoint(last.run_dir / "checkpoints" / f"ckpt-{newest_killed}")),
                            iterations(read_checkpoint(ref.run_dir / "checkpoints" / f"ckpt-{newest_ref}")))
    control = None
    if final_diff["max_abs_diff"] != 0.0 or audit.differing:
        # Is it the resume, or do two uninterrupted runs differ too? A second reference tells.
        again = Trainer(name, work / "reference-2", with_flags(flags, keep_checkpoints=100_000), cwd, work / "reference-2")
        rc2, _, _ = run_watched(again, args.timeout)
        if rc2 == 0:
            worst, only, differing = max_abs_difference(keras_weights(again.run_dir / "model.keras"),
                                                        keras_weights(ref.run_dir / "model.keras"))
            control = {"max_abs_diff": worst, "differing": (only + differing)[:10]}

    kills = [r for r in records if r["mode"] != "finish"]
    leftovers = sorted(in_save_names(last.run_dir))
    mine, theirs = history_epochs(last.run_dir), history_epochs(ref.run_dir)
    history = {"missing": sorted(set(theirs) - set(mine)), "repeated": sorted({e for e in mine if mine.count(e) > 1})}
    return {
        "app": name, "steps_per_epoch": steps_per_epoch, "epochs": epochs, "total_steps": total,
        "flags": killed_flags, "reference_seconds": round(ref_seconds, 1),
        "kills_planned": len(kills), "kills_delivered": sum(r["killed"] for r in kills),
        "kills_by_mode": {m: sum(r["killed"] for r in kills if r["mode"] == m) for m in ("save", "step", "start", "final")},
        "kills_with_save_evidence": sum(bool(r["in_save_evidence"]) and r["killed"] for r in kills),
        "finished_before_kill": sum(not r["killed"] and r["rc"] == 0 for r in kills),
        "failed_resumes": sum(bool(r["problems"]) for r in records),
        "fallbacks": sum(r["fallback"] for r in records),
        "checkpoints_compared": audit.compared, "checkpoints_differing": audit.differing,
        "checkpoint_max_abs_diff": audit.worst, "checkpoints_mislabelled": audit.mislabelled,
        "listed_but_unreadable": audit.unreadable_listed, "no_reference": audit.no_reference[:10],
        "repeated_steps": audit.repeated, "skipped_steps": audit.skipped,
        "final_iterations_killed_vs_reference": final_iterations,
        "final_weights": final_diff, "control_second_reference": control,
        "checkpoint_details": audit.details[:20], "history_rows": history,
        "temporary_files_left": leftovers, "records": records,
    }


# ---------------------------------------------------------------------------------------------
# 2. Bad requests to the SavedModel, in a clean process
# ---------------------------------------------------------------------------------------------

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def is_image(data):
    return data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _pil_bytes(array, fmt, **kwargs):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_headers(rgb, side=20000):
    """Small files whose headers claim side x side pixels (the rest of each file is a real small image's)."""
    png = _pil_bytes(rgb, "PNG")
    ihdr = struct.pack(">II", side, side) + png[24:29]
    huge_png = png[:8] + _png_chunk(b"IHDR", ihdr) + png[33:]
    jpeg = bytearray(_pil_bytes(rgb, "JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    gif = bytearray(_pil_bytes(rgb, "GIF"))
    gif[6:10] = struct.pack("<HH", side, side)
    frame = gif.index(b",", 13 + (3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0))
    gif[frame + 5:frame + 9] = struct.pack("<HH", side, side)
    bmp = bytearray(_pil_bytes(rgb, "BMP"))
    bmp[18:26] = struct.pack("<ii", side, side)
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + struct.pack("<I", side - 1)[:3] + struct.pack("<I", side - 1)[:3]
    webp = b"RIFF" + struct.pack("<I", len(body)) + body
    return {"PNG": huge_png, "JPEG": bytes(jpeg), "GIF": bytes(gif), "BMP": bytes(bmp), "WebP (VP8X)": webp}


def image_cases(good, rng):
    """(label, bad element, extra?) for an image input; each is sent as [good, bad] (the bad one at index 1)."""
    import tensorflow as tf

    rgb = tf.io.decode_image(good, channels=3, expand_animations=False).numpy()
    jpeg = _pil_bytes(rgb, "JPEG", quality=90)
    noise = bytes(rng.getrandbits(8) for _ in range(2048))
    cases = [("random bytes (2 KB)", noise, False),
             ("random bytes behind a JPEG signature", b"\xff\xd8\xff\xe0" + noise, False),
             ("random bytes behind a PNG signature", b"\x89PNG\r\n\x1a\n" + noise, False),
             ("zero-length file", b"", False),
             ("truncated example image (half)", good[:len(good) // 2], False),
             ("truncated JPEG (60%)", jpeg[:len(jpeg) * 6 // 10], False),
             ("truncated to 16 bytes", good[:16], False)]
    cases += [(f"{fmt} header claiming 20000 x 20000", data, False) for fmt, data in huge_headers(rgb).items()]
    # Beyond the issue's list: damage the guards cannot see before decoding (decode.py documents it).
    middle = bytearray(jpeg)
    for i in range(len(jpeg) // 3, len(jpeg) // 3 + 64):
        middle[i] = rng.getrandbits(8)
    cases.append(("JPEG with 64 random bytes in the middle", bytes(middle), True))
    png = bytearray(_pil_bytes(rgb, "PNG"))
    idat = png.index(b"IDAT")
    for i in range(idat + 8, min(idat + 40, len(png) - 12)):
        png[i] ^= 0x5A
    cases.append(("PNG with damaged image data (header and end intact)", bytes(png), True))
    return cases


def text_cases(good, rng):
    noise = bytes([0xFF]) + bytes(rng.getrandbits(8) for _ in range(255))
    return [("random bytes (256)", noise, False),
            ("invalid UTF-8: Latin-1 text", "Más allá".encode("latin-1"), False),
            ("invalid UTF-8: lone surrogate", b"ok \xed\xa0\x80", False),
            ("invalid UTF-8: cut multi-byte character", b"caf\xc3", False),
            ("invalid UTF-8: overlong encoding", b"\xc0\xaf", False),
            ("empty string", b"", False),
            ("whitespace only", " \t\u00a0".encode(), False),
            ("very long text (1 MB)", (good + b" ") * (1_000_000 // (len(good) + 1)), False)]


def bad_requests(example_request, rng):
    """[case]: every bad request for every input of the example request (other inputs keep their example)."""
    cases = []
    for name, values in example_request.items():
        good = values[0]
        others = {k: {"dtype": "string", "value": list(v)} for k, v in example_request.items() if k != name}

        def case(label, value, dtype="string", bad_index=None, extra=False):
            cases.append({"input": name, "label": label, "bad_index": bad_index, "extra": extra,
                          "inputs": {**others, name: {"dtype": dtype, "value": value}}})

        kind = "image" if is_image(good) else "text"
        for label, bad, extra in (image_cases(good, rng) if kind == "image" else text_cases(good, rng)):
            case(label, [good, bad], bad_index=1, extra=extra)
        case("wrong dtype: float32 [2]", [1.0, 2.0], "float32")
        case("wrong dtype: int32 [2]", [1, 2], "int32")
        if kind == "image":
            import tensorflow as tf

            pixels = tf.io.decode_image(good, channels=3, expand_animations=False).numpy()
            case("decoded pixels (uint8 [1, H, W, 3]) instead of encoded bytes", [pixels.tolist()], "uint8")
        case("wrong rank: a scalar", good)
        case("wrong rank: [1, 1]", [[good]])
        case("wrong rank: [2, 2]", [[good, good], [good, good]])
        case("empty batch", [])
    return cases


# What each app's serving docstring says a request gets instead of an error. An app not listed here
# has no documented results: any result for a bad request counts against it.
DOCUMENTED = {
    "transformer_translation": {
        "empty string": ("layers/decoding/translator.py: an empty (or all-whitespace) sentence: an empty "
                         "translation, `truncated` False",
                         lambda out, i: out["translations"][i] == b"" and not out["truncated"][i]),
        "whitespace only": ("layers/decoding/translator.py: the same (all-whitespace)",
                            lambda out, i: out["translations"][i] == b"" and not out["truncated"][i]),
        "very long text (1 MB)": ("layers/decoding/translator.py: a long sentence: the first max_length - 1 "
                                  "subword tokens are translated and `truncated` is True",
                                  lambda out, i: bool(out["truncated"][i])),
    },
    "word_embeddings": {
        "empty string": ("apps/word_embeddings/serving.py: an empty string and a very long string are out of "
                         "vocabulary (zero vector / empty neighbours, `in_vocabulary` False)",
                         lambda out, i: not out["in_vocabulary"][i]),
        "whitespace only": ("apps/word_embeddings/serving.py: words are looked up stripped, so this is the empty word",
                            lambda out, i: not out["in_vocabulary"][i]),
        "very long text (1 MB)": ("apps/word_embeddings/serving.py: as for an empty string",
                                  lambda out, i: not out["in_vocabulary"][i]),
    },
}

WORKER = r'''
import importlib, json, pickle, resource, sys, time
cases_path, export, imports, start = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
import tensorflow as tf
for m in imports:
    importlib.import_module(m)
loaded = tf.saved_model.load(export)
project = sorted({"apps", "layers", "data", "backbones"} & set(sys.modules))
with open(cases_path, "rb") as f:
    cases = pickle.load(f)

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def summary(v):
    a = v.numpy()
    flat = a.ravel()[:64].tolist()
    if a.dtype == object:
        flat = [x[:80] for x in flat]
    return {"shape": list(a.shape), "values": flat}

print(json.dumps({"ready": True, "project_modules": project, "signatures": sorted(loaded.signatures)}), flush=True)
for i in range(start, len(cases)):
    case = cases[i]
    print(json.dumps({"start": i}), flush=True)
    before = rss()
    began = time.perf_counter()
    try:
        fn = loaded.signatures[case["signature"]]
        inputs = {k: tf.constant(v["value"], dtype=v["dtype"]) for k, v in case["inputs"].items()}
        out = fn(**inputs)
        record = {"outcome": "result", "outputs": {k: summary(v) for k, v in out.items()}}
    except Exception as e:
        record = {"outcome": "error", "type": type(e).__name__, "message": " ".join(str(e).split())[:3000]}
    record.update(i=i, seconds=round(time.perf_counter() - began, 3), rss_growth_mb=round(rss() - before, 1),
                  rss_mb=round(rss(), 1))
    print(json.dumps(record, default=lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)), flush=True)
'''


def default_value(dtype):
    """A benign value for a signature input the case does not target (e.g. neighbours' k)."""
    if dtype.is_integer:
        return 2
    if dtype.is_floating:
        return 0.5
    return b""


def signature_inputs(export_dir):
    """{signature: {input name: dtype}}, read from saved_model.pb (no custom op needs loading for this)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString((Path(export_dir) / "saved_model.pb").read_bytes())
    return {name: {k: tf.as_dtype(v.dtype) for k, v in sig.inputs.items()}
            for name, sig in proto.meta_graphs[0].signature_def.items() if not name.startswith("__")}


def serving_cases(export_dir, example_request, rng):
    """The bad requests for every signature of the export that takes the example's inputs."""
    cases = []
    base = bad_requests(example_request, rng)
    signatures = signature_inputs(export_dir)
    for signature in sorted(signatures, key=lambda s: (s != "serving_default", s)):
        specs = signatures[signature]
        if not set(example_request) <= set(specs):
            continue
        extra = {k: {"dtype": d.name, "value": default_value(d)} for k, d in specs.items() if k not in example_request}
        for c in base:
            cases.append({**c, "signature": signature, "inputs": {**c["inputs"], **extra}})
    return cases


class Worker:
    """The clean serving process; lines of JSON on stdout, read by a thread so that a hang can time out."""

    def __init__(self, cases_path, export_dir, imports, start, cwd, log):
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", WORKER, str(cases_path), str(export_dir),
                                      json.dumps(list(imports)), str(start)], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=open(log, "a"), text=True, start_new_session=True,
                                     env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        LIVE.add(self.proc.pid)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return "timeout"
        return json.loads(line) if line is not None else None

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        LIVE.discard(self.proc.pid)


def run_requests(cases, export_dir, imports, work, timeout, say):
    """Every case in a clean worker process; a crash or hang is recorded and a new worker goes on."""
    cases_path = work / "cases.pkl"
    with open(cases_path, "wb") as f:
        pickle.dump(cases, f)
    results, crashes, project_modules = {}, [], set()
    i = 0
    while i < len(cases):
        worker = Worker(cases_path, export_dir, imports, i, work, work / "worker.err")
        ready = worker.next(300)
        if not isinstance(ready, dict) or not ready.get("ready"):
            worker.stop()
            raise RuntimeError(f"the serving worker did not start: {(work / 'worker.err').read_text()[-2000:]}")
        project_modules |= set(ready["project_modules"])
        current = None
        while True:
            msg = worker.next(timeout)
            if msg == "timeout" or msg is None:
                worker.stop()
                if current is None:
                    i = len(cases)
                    break
                what = "hang" if msg == "timeout" else f"process died (exit {worker.proc.returncode})"
                results[current] = {"outcome": "crash", "message": what}
                crashes.append((current, what))
                say(f"    request {current} ({cases[current]['label']}): {what}")
                i = current + 1
                break
            if "start" in msg:
                current = msg["start"]
                continue
            results[msg["i"]] = msg
            current = None
            if msg["i"] == len(cases) - 1:
                worker.stop()
                i = len(cases)
                break
    return results, sorted(project_modules)


def classify(app, case, result):
    """(verdict, note): named | documented | unnamed | undocumented result | crash; plus 'memory' flags."""
    if result["outcome"] == "crash":
        return "crash", result["message"]
    name = case["input"]
    if result["outcome"] == "error":
        message = result["message"]
        core = message.split("[[{{node")[0]
        named = result["type"] == "InvalidArgumentError" and re.search(rf"`{re.escape(name)}`|\b{re.escape(name)}\b", core)
        if named and case["bad_index"] is not None:
            named = re.search(rf"indices:\]?\s*\[[^\]]*\b{case['bad_index']}\b", core)
        shown = core[core.index("assertion failed:"):] if "assertion failed:" in core else core
        return ("named" if named else "unnamed"), f"{result['type']}: {shown[:240]}"
    documented = DOCUMENTED.get(app, {}).get(case["label"])
    if documented:
        out = {k: [x.encode() if isinstance(x, str) else x for x in v["values"]] for k, v in result["outputs"].items()}
        try:
            ok = documented[1](out, case["bad_index"])
        except (KeyError, IndexError):
            ok = False
        if ok:
            return "documented", documented[0]
        return "undocumented result", f"not as documented ({documented[0]}): {json.dumps(result['outputs'])[:200]}"
    return "undocumented result", json.dumps(result["outputs"], default=str)[:240]


def serving_figures(name, example, ref_dir, work, args, rng, say):
    from apps.core.registry import get_app

    app_cls = get_app(name)
    export_base = work / "exports"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "apps", name, "export", "--run_dir", str(ref_dir), "--export_dir",
                           str(export_base)], cwd=work, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: export failed: {proc.stderr[-2000:]}")
    export_dir = sorted(p for p in export_base.iterdir() if p.name.isdigit())[-1]
    cases = serving_cases(export_dir, example.request, rng)
    started = time.monotonic()
    results, project_modules = run_requests(cases, export_dir, app_cls.serving_imports, work, args.request_timeout, say)
    rows = []
    for i, case in enumerate(cases):
        result = results.get(i, {"outcome": "crash", "message": "no answer"})
        verdict, note = classify(name, case, result)
        big = result.get("rss_growth_mb", 0) > RSS_LIMIT_MB
        rows.append({"signature": case["signature"], "input": case["input"], "label": case["label"],
                     "extra": case["extra"], "verdict": verdict, "note": note, "seconds": result.get("seconds"),
                     "rss_growth_mb": result.get("rss_growth_mb"), "over_memory_limit": big})
    counted = [r for r in rows if not r["extra"]]
    return {
        "export": str(export_dir), "serving_imports": list(app_cls.serving_imports),
        "project_modules_imported": project_modules, "requests": len(counted), "extra_requests": len(rows) - len(counted),
        "named": sum(r["verdict"] == "named" for r in counted),
        "documented": sum(r["verdict"] == "documented" for r in counted),
        "unnamed": sum(r["verdict"] in ("unnamed", "undocumented result") for r in counted),
        "crashes": sum(r["verdict"] == "crash" for r in counted),
        "over_memory_limit": sum(r["over_memory_limit"] for r in counted),
        "max_rss_growth_mb": max((r["rss_growth_mb"] or 0) for r in rows) if rows else 0,
        "seconds": round(time.monotonic() - started, 1), "rows": rows,
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def fmt_diff(x):
    return "0 (bit-identical)" if x == 0 else ("missing/shape" if x == math.inf else f"{x:.3g}")


def resume_table(figures):
    lines = ["| app | steps (epochs x steps/epoch) | kills: in a save / between steps / start-up / final save "
             "| kills that left a save cut short | failed resumes | fallbacks to an older checkpoint "
             "| repeated / skipped steps | checkpoints compared (differing) | final weights: max abs difference "
             "| history.csv rows lost / repeated | temporary files left | time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in figures:
        k = f["kills_by_mode"]
        h = f["history_rows"]
        lines.append(f"| {f['app']} | {f['total_steps']} ({f['epochs']} x {f['steps_per_epoch']}) | "
                     f"{f['kills_delivered']} of {f['kills_planned']}: {k['save']} / {k['step']} / {k['start']} / {k['final']} | "
                     f"{f['kills_with_save_evidence']} | {f['failed_resumes']} | {f['fallbacks']} | "
                     f"{f['repeated_steps']} / {f['skipped_steps']} | {f['checkpoints_compared']} ({f['checkpoints_differing']}) | "
                     f"{fmt_diff(f['final_weights']['max_abs_diff'])} over {f['final_weights']['arrays']} arrays | "
                     f"{len(h['missing'])} / {len(h['repeated'])} | {len(f['temporary_files_left'])} | "
                     f"{f.get('seconds', 0) / 60:.1f} min |")
    return "\n".join(lines)


def serving_table(figures):
    lines = ["| app | requests (signatures) | named INVALID_ARGUMENT | documented results | unnamed errors or undocumented results "
             "| crashes / hangs | > 500 MB | largest growth of the process |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in figures:
        signatures = sorted({r["signature"] for r in f["rows"]})
        lines.append(f"| {f['app']} | {f['requests']} ({', '.join(signatures)}) | {f['named']} | {f['documented']} | "
                     f"{f['unnamed']} | {f['crashes']} | {f['over_memory_limit']} | {f['max_rss_growth_mb']:.0f} MB |")
    return "\n".join(lines)


def findings(resume, serving):
    """(lines about the goal's counts that are not 0, lines about everything else found)."""
    goal, other = [], []
    for f in resume:
        for r in f["records"]:
            if r["problems"]:
                goal.append(f"- {f['app']}, {r['mode']} run: {'; '.join(r['problems'])}")
        if f["final_weights"]["max_abs_diff"] != 0.0:
            goal.append(f"- {f['app']}: final weights differ ({fmt_diff(f['final_weights']['max_abs_diff'])}; "
                        f"{', '.join(f['final_weights']['differing'][:5])}); a second uninterrupted run differs by "
                        f"{f['control_second_reference']}")
        for item in f["listed_but_unreadable"]:
            goal.append(f"- {f['app']}: a listed checkpoint cannot be read: {item}")
        for d in f["checkpoint_details"]:
            goal.append(f"- {f['app']}: ckpt-{d['checkpoint']} differs from the reference's: {d}")
        if f["fallbacks"]:
            other.append(f"- {f['app']}: {f['fallbacks']} resume(s) from an older checkpoint than the newest listed")
        h = f["history_rows"]
        if h["missing"] or h["repeated"]:
            other.append(f"- {f['app']}: the killed run's history.csv has no row for epoch(s) {h['missing']}"
                         + (f" and two or more for {h['repeated']}" if h["repeated"] else "") + " (Keras' 0-based numbers)")
        if f["temporary_files_left"]:
            left = f["temporary_files_left"]
            other.append(f"- {f['app']}: left in the run directory after the last resume: {', '.join(left[:4])}"
                         f"{' ...' if len(left) > 4 else ''}")
    grouped = {}  # the same answer to the same request, across apps and signatures
    for f in serving:
        for r in f["rows"]:
            if r["verdict"] in ("unnamed", "undocumented result", "crash") or r["over_memory_limit"]:
                grouped.setdefault((r["verdict"], r["label"], r["extra"]), []).append((f["app"], r))
    for (verdict, label, extra), hits in grouped.items():
        where = {}
        for app, r in hits:
            where.setdefault(app, set()).add(r["signature"])
        places = "; ".join(f"{app} ({', '.join(sorted(sigs))})" for app, sigs in where.items())
        note = re.sub(r"__inference_signature_wrapper_\d+", "__inference_signature_wrapper_N", hits[0][1]["note"])
        note = re.sub(r"Graph execution error: Detected at node (\S+) defined at \(most recent call last\): "
                      r"<stack traces unavailable> ", r"at node \1: ", note)
        (other if extra else goal).append(f"- {label}, {len(hits)} request(s): {verdict}, in {places}; first answer: "
                                          f"`{note[:150].strip()}{'...' if len(note) > 150 else ''}`")
    return goal, other


def tree_note():
    """Which code was measured: the commit of this checkout, and what differs from it."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h (%cs)"], capture_output=True,
                                text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True,
                                 check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "a copy of the code that is not a git checkout"
    changed = [line[3:] for line in changed if line.strip()]
    return f"commit {commit}" + (f" with uncommitted changes in {', '.join(changed[:5])}" if changed else "")


def readme_section(run):
    """The README section of a measurement (`run`: what --json writes)."""
    resume, serving, args = run["resume"], run["serving"], argparse.Namespace(**run["args"])
    documented = sorted({(f["app"], r["label"], r["note"]) for f in serving for r in f["rows"] if r["verdict"] == "documented"})
    goal, other = findings(resume, serving)
    lines = [
        SECTION, "", GENERATED, "",
        "```bash", run["command"], "```", "",
        f"Measured {run['date']} on {run['tree']}: {run['machine']}, {run['seconds'] / 60:.1f} min in all, for the apps "
        f"registered then: {', '.join(run['apps'])}. Seed {args.seed}; {args.kills} kills per app.", "",
        "**Kill and resume.** Each app's smoke flags with `--deterministic true --checkpoint_every_steps 1` and enough "
        f"epochs for at least {args.min_steps} optimizer steps; the killed run keeps 2 checkpoints (so every save also "
        "deletes one), the reference keeps all. Kills cycle through: inside a checkpoint save (0-6 ms after "
        "`ckpt-N_temp` or `checkpoint.tmp*` appears), a random moment between steps, a random moment of start-up "
        "(imports, data preparation, run files), and last inside the final `model.keras` save; their targets are "
        "spread over the run. \"Left a save cut short\" counts kills after which a temporary checkpoint folder, "
        "listing or model file, or an unlisted `ckpt-N`, remained: those kills provably landed inside a save.", "",
        resume_table(resume), "",
        "Steps are counted from the checkpoints, not the logs: each checkpoint stores the data position (epoch, step) "
        "and the optimizer's update counter in one atomic save, and the reference keeps one at every position, so each "
        "checkpoint the killed run left (read after each of its processes) is compared with the reference's at the same "
        "position: a counter ahead would be an update applied twice, behind one lost; every other variable (weights, "
        "optimizer slots, seeds) is compared too (not tf.train.Checkpoint's own `save_counter`: bookkeeping). Final "
        "weights: every array of `model.keras` against the reference's.", "",
        "**Bad requests**, in a clean process (`python -I`: TensorFlow and the app's `serving_imports` only; project "
        f"packages imported: {sorted({m for f in serving for m in f['project_modules_imported']}) or 'none'}), to every "
        "exported signature that takes the example's inputs. A bad element goes second in a batch with a good one, "
        "and a named error must name the input and index 1.", "",
        serving_table(serving), "",
    ]
    if documented:
        lines += ["Documented results, counted as fine:", ""]
        lines += [f"- {app}, {label}: {note}" for app, label, note in documented]
        lines.append("")
    lines += ["Counts of the goal that are not 0:" if goal else "Every count of the goal is 0.", ""] + goal
    if other:
        lines += ["", "Also found (not counts of the goal; the last lines are the requests beyond the issue's list, damage "
                  "in the middle of a file whose header and end are intact):", ""] + other
    lines += ["", END]
    return "\n".join(lines) + "\n"


SECTION = "## `faults.py`: kill -9 during training, bad requests to the SavedModels (issue 11)"
GENERATED = "<!-- written by bench/faults.py --readme: rerunning replaces everything up to the end mark -->"
END = "<!-- end of bench/faults.py's figures -->"


def write_readme(path, section):
    """Replace the generated part of this script's section (text after its end mark stays), or append the section."""
    text = path.read_text()
    start = text.find(SECTION + "\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find(END, start)
    if end >= 0:
        end += len(END) + 1
    else:
        end = text.find("\n## ", start + len(SECTION))
        end = end + 1 if end >= 0 else len(text)
    path.write_text(text[:start] + section + text[end:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per app")
    parser.add_argument("--min_steps", type=int, default=None, help="optimizer steps per training (default 3 x kills, >= 30)")
    parser.add_argument("--apps", default=None, help="comma-separated apps (default: every registered app)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip_resume", action="store_true")
    parser.add_argument("--skip_serving", action="store_true")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for one training process")
    parser.add_argument("--request_timeout", type=float, default=120, help="seconds for one request")
    parser.add_argument("--work_dir", default=None, help="keep the runs here (default: a temporary folder, removed)")
    parser.add_argument("--json", default=None, help="write every figure and record to this file")
    parser.add_argument("--render", default=None, metavar="JSON",
                        help="measure nothing: print (and with --readme write) the figures of a file --json wrote")
    parser.add_argument("--readme", nargs="?", const=str(ROOT / "bench" / "README.md"), default=None,
                        help="write the figures into this README (default: bench/README.md beside this script)")
    args = parser.parse_args(argv)
    if args.kills < 1:
        parser.error("--kills must be >= 1")
    args.min_steps = args.min_steps or max(30, 3 * args.kills)
    if args.render:
        return report(json.loads(Path(args.render).read_text()), args.readme)
    command = "python bench/faults.py " + " ".join(argv if argv is not None else sys.argv[1:])
    began = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))  # runs the cleanup below

    from apps.core.registry import list_apps

    apps = args.apps.split(",") if args.apps else list_apps()
    rng = random.Random(args.seed)
    work_root = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="faults-"))
    work_root.mkdir(parents=True, exist_ok=True)
    resume, serving = [], []

    def say(text):
        print(text, flush=True)

    try:
        for name in apps:
            from apps.core.registry import get_app

            work = work_root / name
            work.mkdir(parents=True, exist_ok=True)
            example = get_app(name).smoke_example(work)
            started = time.monotonic()
            say(f"== {name}")
            if not args.skip_resume:
                figures = kill_and_resume(name, example, work, args, rng, say)
                figures["seconds"] = round(time.monotonic() - started, 1)
                resume.append(figures)
                say(resume_table([figures]))
            if not args.skip_serving:
                ref = work / "reference"
                if not (ref / "model.keras").is_file():  # --skip_resume: a plain smoke run to export
                    env = {**os.environ, "PYTHONPATH": str(ROOT)}
                    subprocess.run([sys.executable, "-m", "apps", name, "train", "--run_dir", str(ref), *example.train_flags],
                                   cwd=work, env=env, capture_output=True, check=True, timeout=args.timeout)
                figures = serving_figures(name, example, ref, work, args, rng, say)
                figures["app"] = name
                serving.append(figures)
                say(serving_table([figures]))
            say(f"  {name}: {time.monotonic() - started:.0f} s")
    finally:
        stop_live()
        if not args.work_dir:
            shutil.rmtree(work_root, ignore_errors=True)
    run = {"command": command, "date": datetime.date.today().isoformat(), "tree": tree_note(),
           "machine": f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}, shared with other "
                      "sessions; no GPU)",
           "seconds": time.monotonic() - began, "apps": apps, "args": vars(args), "resume": resume, "serving": serving}
    if args.json:
        Path(args.json).write_text(json.dumps(run, indent=1, default=str))
    report(run, args.readme)


def report(run, readme=None):
    """Print the tables and findings of a measurement; write its README section if asked."""
    print()
    if run["resume"]:
        print(resume_table(run["resume"]) + "\n")
    if run["serving"]:
        print(serving_table(run["serving"]) + "\n")
    goal, other = findings(run["resume"], run["serving"])
    for line in goal + other:
        print(line)
    print(f"\ntotal {run['seconds'] / 60:.1f} min")
    if readme:
        write_readme(Path(readme), readme_section(run))
        print(f"figures written to {readme}")


if __name__ == "__main__":
    main()
