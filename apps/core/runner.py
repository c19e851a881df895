"""train / evaluate / predict / export, written once for every app.

A run directory holds everything a run produced: config.json (the resolved config), state.json
(what the app learned, e.g. class names), run.json (which app, and the path, shape and dtype of
every model and optimizer variable its checkpoints hold), checkpoints/, logs/ (TensorBoard),
history.csv, learning_curves.png, model.keras (the final model) and eval/ (metrics and pictures).

`train` reads and checks before it writes: a run directory that holds another app's run, a model or
checkpoints without run.json, or a model or optimizer state that does not fit the one the flags build,
is refused in one line with every file left as it was; only a checkpoint that cannot be read is
skipped for an older one. With several workers, the chief alone writes the run directory, and it
prepares the run's data before the others read it.
"""
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from apps.core.app import fills_every_replica
from apps.core.checkpoints import (StepCheckpoint, StopOnNonFiniteLoss, TrainingState, difference, fingerprint,
                                   optimizer_fingerprint, saved_fingerprint)
from apps.core.config import to_dict
from apps.core.errors import UserError
from apps.core.files import atomic_write_text, os_error_message, remove_leftovers, run_lock, write_error_message
from apps.core.optim import Offset, sized_by_epochs
from apps.core.plots import plot_learning_curves
from apps.core.run_config import FitConfig
from apps.core.strategy import is_chief, make_strategy, worker_id
from data.errors import DataError
from data.pipeline_options import pipeline_options

RUN_RECORD = "run.json"


def run_dir(app):
    return app.run_dir


def seed_everything(cfg):
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()


def _verbose(cfg):
    if cfg.verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return 1 if cfg.verbose == "bar" else 2  # line, debug


def _distribute(dataset):
    """Shard by data across workers, and without tf.data autotuning (see data.pipeline_options)."""
    options = pipeline_options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _every_replica_fed(batches, replicas):
    """Validation `batches` for several replicas, without a last batch too small for every replica (said
    when it is left out; its length stays known: Keras warns when a dataset of unknown length ends)."""
    if replicas == 1:
        return batches
    count = int(batches.cardinality())
    if count <= 0:
        return batches
    n = int(tf.shape(tf.nest.flatten(next(iter(batches.skip(count - 1))))[0])[0])
    if fills_every_replica(n, replicas):
        return batches
    print(f"warning: validation leaves out its last batch of {n} example(s), too few for {replicas} replicas")
    return batches.take(count - 1)


def _train_stream(app, first_epoch, skip_steps, last_epoch):
    """Batches of epochs [first_epoch, last_epoch), skipping the first `skip_steps` of the first."""
    epochs = tf.data.Dataset.range(first_epoch, last_epoch)
    stream = epochs.flat_map(lambda e: app.build_dataset("train", epoch=e))
    return _distribute(stream.skip(skip_steps).prefetch(1))


@contextlib.contextmanager
def _os_errors_in_one_line(where):
    """A full disk, a read-only folder or a vanished file ends the command in one line naming the path, or
    the folder `where` when the error names none (a full disk is often met at a flush, not at an open)."""
    try:
        yield
    except OSError as e:
        e.filename = e.filename or str(where)
        raise UserError(os_error_message(e)) from None


class _LogWrites(keras.callbacks.Callback):
    """Runs a logging callback (CSVLogger, TensorBoard) so that a write it cannot make (full disk, read-only
    folder) ends the run in one line naming `path`, never a traceback, and loses nothing already saved: the
    epoch's checkpoint is saved by an earlier callback, and a history row cut short is taken out again."""

    def __init__(self, callback, path):
        super().__init__()
        self.callback = callback
        self.path = Path(path)

    def set_model(self, model):  # TensorBoard writes the model's graph here
        super().set_model(model)
        self._write(self.callback.set_model, model)

    def _write(self, hook, *args, **kwargs):
        size = self.path.stat().st_size if self.path.is_file() else None
        try:
            hook(*args, **kwargs)
        except (OSError, tf.errors.OpError) as e:
            csv_file = getattr(self.callback, "csv_file", None)
            if csv_file is not None:  # closed now: its half-written buffer must not be flushed at exit
                with contextlib.suppress(OSError, ValueError):
                    csv_file.close()
            if size is not None:
                with contextlib.suppress(OSError):
                    os.truncate(self.path, size)
            raise UserError(write_error_message(e, self.path)) from None


def _logging_hook(name):
    def hook(self, *args, **kwargs):
        self._write(getattr(self.callback, name), *args, **kwargs)

    hook.__name__ = name
    return hook


for _name in ("set_params", "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
              "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end"):
    setattr(_LogWrites, _name, _logging_hook(_name))


def train(app, extra_callbacks=()):
    """Train (or resume, or extend) the run in the app's run directory; returns the final model.
    `extra_callbacks` (e.g. the benchmarks' timers) run after the runner's own."""
    with _os_errors_in_one_line(run_dir(app)):
        return _train(app, extra_callbacks)


def _train(app, extra_callbacks):
    cfg = app.config
    out = run_dir(app)
    if app.single_device and cfg.strategy not in ("default", "auto"):
        raise UserError(f"{app.name} trains on one device ({app.single_device}); --strategy {cfg.strategy} is not supported")
    strategy = make_strategy(cfg.strategy, cfg.tpu)  # first: multi-worker must start before any op runs
    seed_everything(cfg)
    chief = is_chief(strategy)
    replicas, batch = strategy.num_replicas_in_sync, app.train_batch_size()
    print(f"strategy: {type(strategy).__name__} with {replicas} replica(s); global batch {batch}")
    if replicas > 1:
        app.check_replicas(replicas)
    # Non-chief workers join every collective save but write to a private folder.
    files = out if chief else out / "workers" / f"worker-{worker_id(strategy)}"
    with contextlib.ExitStack() as held:
        # 1. Every worker takes its folder's lock and checks whose run it holds. The chief alone prepares the
        #    run's data (corpus, vocabularies, split records: what building epoch 0 and, in a new run, app.state()
        #    write) while the others wait in _on_every_worker; then they read it.
        def check_folder():
            files.mkdir(parents=True, exist_ok=True)
            held.enter_context(run_lock(files))
            if removed := remove_leftovers(files):
                print(f"removed {removed} temporary file(s) an interrupted save left in {files}")
            record = _read_record(files, app.name)
            resumed = _read_state(out) if record["model"] is not None else None
            if resumed is not None:
                app.resume_state(resumed)
            if not chief:
                return record, None, None
            train_epoch = app.build_dataset("train", epoch=0)
            # A resumed run's state is taken once its checkpoints are found to fit (step 3); a new one has
            # nothing to overwrite (_read_record refuses unrecorded models and checkpoints).
            learned = app.state() if record["model"] is None else None
            return record, train_epoch, learned

        record, train_epoch, learned = _on_every_worker(strategy, check_folder)
        if train_epoch is None:
            train_epoch = app.build_dataset("train", epoch=0)
        cfg = app.config  # an app may set what its flags left to the data as it reads it (detection: epochs)
        steps_per_epoch = int(train_epoch.cardinality())
        if steps_per_epoch <= 0:
            raise UserError("the training split gives no full batch; lower --batch_size")
        val = app.build_dataset("val")  # None: the app holds out no validation split
        val = _distribute(_every_replica_fed(val, strategy.num_replicas_in_sync)) if val is not None else None
        with strategy.scope():
            model = app.build_model()
        updates = app.updates_per_epoch(steps_per_epoch)
        state = TrainingState(files / "checkpoints", cfg.keep_checkpoints)
        phases = app.phases()

        # 2. Restore what fits (or refuse), all before a byte of the run directory is written. Workers
        #    agree on the position before compiling: creating variables is a collective step.
        def find_position():
            saved = state.find()
            keep = saved is not None or (files / "model.keras").is_file()  # trained weights to protect
            if keep:
                _refuse_if_different(files, app.name, "model", record["model"], fingerprint(model),
                                     saved_fingerprint(saved, None)[0] if saved else None)
            epoch, step = (saved.epoch, saved.step) if saved else (0, 0)
            if step >= steps_per_epoch:  # saved after an epoch's last batch, before its end
                epoch, step = epoch + 1, 0
            state.epoch.assign(epoch)
            state.step.assign(step)
            return saved, keep

        def position():
            return int(state.epoch), int(state.step)

        saved, keep = _on_every_worker(strategy, find_position, position)
        if saved is None:  # each worker alike: the same data and initial weights give the same change
            _on_every_worker(strategy, lambda: app.start_training(model), position)
        epoch, step = position()
        segment = _segment(record["segment"] if saved else None, epoch, step, cfg.epochs)
        index = _next_phase(phases, epoch, -1)
        key = _compile(app, model, strategy, phases, index, updates, steps_per_epoch, segment)

        def restore():
            _refuse_if_different(files, app.name, f"optimizer state ({key})", record["optimizers"].get(key) if keep else None,
                                 optimizer_fingerprint(model.optimizer), saved_fingerprint(saved, key)[1] if saved else None)
            state.attach(model, key, restore=saved)
            state.epoch.assign(epoch)  # the checkpoint's own position may be the end of an epoch's last batch
            state.step.assign(step)

        _on_every_worker(strategy, restore, position)
        record = {"app": app.name, "model": fingerprint(model), "segment": segment,
                  "optimizers": {**(record["optimizers"] if keep else {}), key: optimizer_fingerprint(model.optimizer)}}
        if saved:
            print(f"resuming from epoch {saved.epoch}, step {saved.step} ({saved.path})")
        if epoch >= cfg.epochs:
            print(f"the run already has {epoch} epochs; pass --epochs N (> {epoch}) to extend it")

        # 3. Write: from here on the run directory is this run's.
        atomic_write_text(files / "config.json", json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")
        if chief:  # app.state() may record data (a split record) in the run directory: the chief's alone
            learned = app.state() if learned is None else learned
            atomic_write_text(files / "state.json", json.dumps(learned, indent=2) + "\n")
        _write_record(files, record)
        history, logs = files / "history.csv", files / "logs"
        # The epoch's history row is written before its checkpoint (a kill between them repeats the row on
        # resume, which the curves read once, instead of losing it); TensorBoard and the rest come after.
        history_row = _LogWrites(keras.callbacks.CSVLogger(str(history), append=True), history)
        callbacks_common = [_LogWrites(keras.callbacks.TensorBoard(str(logs)), logs), *extra_callbacks]
        if isinstance(cfg, FitConfig) and cfg.early_stopping_patience:
            callbacks_common.append(keras.callbacks.EarlyStopping(patience=cfg.early_stopping_patience, restore_best_weights=False))
        while int(state.epoch) < phases[index].until_epoch:
            phase = phases[index]
            print(f"phase {phase.name!r}: epochs {int(state.epoch) + 1}..{phase.until_epoch}, "
                  f"{len(model.trainable_weights)} trainable weight tensors")
            callbacks = [StopOnNonFiniteLoss(), history_row, StepCheckpoint(state, cfg.checkpoint_every_steps, steps_per_epoch),
                         *callbacks_common]
            if int(state.step):  # finish the interrupted epoch first, then whole epochs
                epoch, step = int(state.epoch), int(state.step)
                model.fit(_train_stream(app, epoch, step, epoch + 1), validation_data=val, initial_epoch=epoch,
                          epochs=epoch + 1, steps_per_epoch=steps_per_epoch - step, callbacks=callbacks,
                          verbose=_verbose(cfg), shuffle=False)
            if int(state.epoch) < phase.until_epoch and not model.stop_training:
                model.fit(_train_stream(app, int(state.epoch), 0, phase.until_epoch), validation_data=val,
                          initial_epoch=int(state.epoch), epochs=phase.until_epoch, steps_per_epoch=steps_per_epoch,
                          callbacks=callbacks, verbose=_verbose(cfg), shuffle=False)
            if model.stop_training:  # early stopping ends every phase
                break
            following = _next_phase(phases, int(state.epoch), index)
            if following == index:
                break
            index = following
            key = _compile(app, model, strategy, phases, index, updates, steps_per_epoch, segment)
            record["optimizers"][key] = optimizer_fingerprint(model.optimizer)
            _write_record(files, record)
            state.attach(model, key)  # a new phase's optimizer starts afresh; the weights are in memory
        app.finish_training(model)
        if chief:
            atomic_save_model(model, out / "model.keras")
            if (out / "history.csv").exists():
                plot_learning_curves(out / "history.csv", out / "learning_curves.png")
            print(f"model saved to {out / 'model.keras'}; curves in {out / 'learning_curves.png'}")
    return model


def _next_phase(phases, epoch, after):
    """The first phase after index `after` with epochs left at `epoch`; else the last phase (compiled so
    that the saved model has its trainable set), or `after` itself when that is the last."""
    for i in range(after + 1, len(phases)):
        if epoch < phases[i].until_epoch:
            return i
    return max(after, len(phases) - 1)


def _compile(app, model, strategy, phases, index, updates, steps_per_epoch, segment):
    """Compile phase `index` (its trainable set, its optimizer, built); returns its checkpoint key."""
    phase = phases[index]
    phase_start = phases[index - 1].until_epoch if index else 0
    with strategy.scope():
        if phase.prepare:
            phase.prepare(model)
        optimizer = _phase_optimizer(app, updates, phase, phase_start, steps_per_epoch, segment)
        model.compile(optimizer=optimizer, **app.compile_defaults())
        model.optimizer.build(model.trainable_variables)
    return f"optimizer_{index}_{phase.name}_{type(model.optimizer).__name__.lower()}"


def _segment(recorded, epoch, step, epochs):
    """The stretch of the run whose learning-rate curve this command follows: {from_epoch, from_step,
    until_epoch}. A new run's stretch is the whole run; resuming with the run's --epochs (or with nothing
    left to train) keeps the recorded stretch; another --epochs starts a new one at the restored position."""
    whole = {"from_epoch": 0, "from_step": 0, "until_epoch": epochs}
    if (epoch, step) == (0, 0):
        return whole
    recorded = recorded or whole
    if epoch >= epochs or epochs == recorded["until_epoch"]:
        return recorded
    return {"from_epoch": epoch, "from_step": step, "until_epoch": epochs}


def _phase_optimizer(app, updates, phase, phase_start, steps_per_epoch, segment):
    """The app's optimizer for `phase`, with a schedule sized by --epochs (cosine, linear) laid over the
    stretch `segment` rather than the whole run: a run extended to more epochs gets a new curve over the
    added epochs (warm-up and decay from --learning_rate, times the phase's factor), never the middle of
    a re-sized one. Why this and not the alternatives: see apps.core.optim.Offset. Other schedules give
    each step the same rate whatever --epochs is, so an extended run follows one long run's curve."""
    cfg = app.config
    begin = (segment["from_epoch"], segment["from_step"])
    if not sized_by_epochs(cfg) or begin == (0, 0):
        return app.build_optimizer(updates, phase.lr_factor)
    # The app sizes its schedule by its config's epochs: hand it the stretch's.
    app.config = dataclasses.replace(cfg, epochs=max(segment["until_epoch"] - segment["from_epoch"], 1))
    try:
        optimizer = app.build_optimizer(updates, phase.lr_factor)
    finally:
        app.config = cfg
    schedule = optimizer._learning_rate  # Keras exposes only its value; the schedule object is what is wrapped
    if begin > (phase_start, 0) and isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        # The stretch starts inside this phase, whose optimizer counts steps from the phase's start.
        start = (begin[0] - phase_start) * updates + begin[1] * updates // steps_per_epoch
        optimizer.learning_rate = Offset(schedule, start)
    return optimizer


def _read_record(folder, name):
    """The run record of `folder` ({} parts for a new run); another app's run is refused."""
    path = folder / RUN_RECORD
    if not path.is_file():
        _refuse_unrecorded(folder)
        return {"app": name, "model": None, "optimizers": {}, "segment": None}
    try:
        record = json.loads(path.read_text())
        record["app"], record["model"], record["optimizers"], record["segment"]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is damaged ({e}); without it the run's checkpoints and model cannot be checked "
                        "against the flags: use another --run_dir") from None
    if record["app"] != name:
        raise UserError(f"{folder} holds {_a(record['app'])} run, not {name}; use another --run_dir")
    return record


def _refuse_unrecorded(folder):
    """A folder with a trained model or checkpoints but no run.json (a run from before run.json) cannot be
    checked against the flags, so training there could overwrite a good model with an untrained one: refused."""
    checkpoints = len(list((folder / "checkpoints").glob("*.index")))
    there = [name for name, present in (("model.keras", (folder / "model.keras").exists()),
                                        (f"{checkpoints} checkpoint(s)", checkpoints)) if present]
    if there:
        raise UserError(f"{folder} holds {' and '.join(there)} but no {RUN_RECORD} (a run from before runs recorded "
                        "their app and model), so training cannot check that they fit and would overwrite them: use "
                        f"another --run_dir, or move model.keras and checkpoints/ out of {folder} to start it afresh")


def _write_record(folder, record):
    """run.json, one variable a line."""
    def rows(entries):
        return "[\n" + ",\n".join(f"    {json.dumps(e)}" for e in entries) + "\n  ]"

    optimizers = ",\n".join(f"    {json.dumps(k)}: {rows(v).replace(chr(10) + '  ', chr(10) + '    ')}"
                             for k, v in record["optimizers"].items())
    text = (f'{{\n  "app": {json.dumps(record["app"])},\n  "segment": {json.dumps(record["segment"])},\n'
            f'  "model": {rows(record["model"])},\n  "optimizers": {{\n{optimizers}\n  }}\n}}\n')
    atomic_write_text(folder / RUN_RECORD, text)


def _a(name):
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def _refuse_if_different(folder, name, what, recorded, now, saved):
    """UserError if the run's record or its checkpoint (when there is one) holds another `what`."""
    for there, by_position in ((recorded, False), (saved, what != "model")):
        if there is not None:
            diff = difference(there, now, by_position)
            if diff:
                raise UserError(f"{folder} holds {_a(name)} run whose {what} differs: {diff}; use another --run_dir "
                                "(or the flags the run was trained with)")


def _on_every_worker(strategy, fn, position=lambda: (0, 0)):
    """fn(), and with several workers: all of them learn whether every one got through it, and that
    they stand at the same training position; else they all stop in one line (none waits forever for a
    worker that stopped). Also a barrier: no worker leaves before all have arrived."""
    error = result = None
    try:
        result = fn()
    except (UserError, DataError) as e:
        error = e
    except OSError as e:
        error = UserError(os_error_message(e))
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        if error is not None:
            raise error
        return result
    epoch, step = position() if error is None else (-1, -1)
    row = tf.constant([[int(error is not None), epoch, step, worker_id(strategy)]], tf.int64)
    rows = strategy.gather(strategy.run(lambda: tf.identity(row)), axis=0).numpy()
    if error is not None:
        raise error
    failed = sorted({int(r[3]) for r in rows if r[0]})
    if failed:
        raise UserError(f"worker {', '.join(map(str, failed))} stopped with an error (see its output); so does this one")
    positions = {int(r[3]): (int(r[1]), int(r[2])) for r in rows}
    if len(set(positions.values())) > 1:
        where = ", ".join(f"worker {w} at epoch {e} step {s}" for w, (e, s) in sorted(positions.items()))
        raise UserError(f"the workers restored different training positions ({where}); give every worker its "
                        "checkpoints of the same run (or none), then start them again")
    return result


def atomic_save_model(model, path):
    """model.save to a temporary file beside `path`, then rename over it."""
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as e:
        e.filename = str(path)  # the file the user knows, not the temporary name
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_state(out):
    """The app's learned state recorded in run directory `out` (state.json), or None without one."""
    path = out / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}") from None


def load_trained(app):
    """The run's final model, with the app's learned state restored."""
    out = run_dir(app)
    path = out / "model.keras"
    if not path.is_file():
        raise UserError(f"no trained model at {path}; run `python -m apps {app.name} train` first (or pass --run_dir)")
    state = _read_state(out)
    if state is None:  # a model copied without it: the class names, vocabulary... it was trained with are lost
        raise UserError(f"{out / 'state.json'} is missing: model.keras cannot be used without what the run learned "
                        "with it; copy the whole run folder, not only model.keras and config.json")
    app.load_state(state)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)  # inference only
    except Exception as e:  # a damaged file fails anywhere inside (zip, HDF5, JSON): one line, not a traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load {path}: {first}; if the file is damaged, `python -m apps {app.name} train "
                        f"--config {out / 'config.json'}` writes it again from the last checkpoint") from None


def evaluate(app):
    out = run_dir(app) / "eval"
    with _os_errors_in_one_line(out):
        model = load_trained(app)
        out.mkdir(parents=True, exist_ok=True)
        metrics = app.evaluate(model, out)
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}, indent=2))
    print(f"metrics and pictures in {out}")
    return metrics


def predict(app, inputs):
    if not inputs:
        raise UserError(f"predict needs inputs: python -m apps {app.name} predict {app.predict_inputs} ...")
    with _os_errors_in_one_line(run_dir(app)):
        model = load_trained(app) if app.uses_trained_model("predict") else None
        records = app.predict(model, inputs)
    for record in records:
        print(record)
    return records


def run_extra_verb(app, verb):
    """An app's own verb (App.extra_verbs, e.g. face_verification's `calibrate`) on the trained model;
    what it returns is printed as JSON and written to <run_dir>/<verb>.json."""
    with _os_errors_in_one_line(run_dir(app)):
        model = load_trained(app)
        result = getattr(app, verb)(model)
        atomic_write_text(run_dir(app) / f"{verb}.json", json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


def export(app, base_dir=None):
    """Write the app's serving module as saved_models/<app>/<version>/ under the working directory (as
    runs/ is), or under `base_dir`, atomically."""
    with _os_errors_in_one_line(base_dir or Path("saved_models") / app.name):
        return _export(app, base_dir)


def _export(app, base_dir):
    model = load_trained(app)
    base = Path(base_dir or Path("saved_models") / app.name)
    base.mkdir(parents=True, exist_ok=True)
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
    final = base / str(max(versions, default=0) + 1)
    module = app.serving_model(model)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=base))
    try:
        # tf.functions, not concrete functions: traced inside the save (a trace made before it is made again
        # there, as TensorFlow keys traces by the save context too)
        signatures = {"serving_default": module.serve, **app.extra_signatures(module)}
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        app.export_files(model, tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"exported {final}")
    return final
