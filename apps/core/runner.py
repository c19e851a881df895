"""train / evaluate / predict / export, written once for every app.

A run directory holds everything a run produced: config.json (the resolved config), state.json
(what the app learned, e.g. class names), checkpoints/, logs/ (TensorBoard), history.csv,
learning_curves.png, model.keras (the final model) and eval/ (metrics and pictures).
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from apps.core.checkpoints import StepCheckpoint, StopOnNonFiniteLoss, TrainingState
from apps.core.config import save_config
from apps.core.errors import UserError
from apps.core.plots import plot_learning_curves
from apps.core.run_config import FitConfig
from apps.core.strategy import is_chief, make_strategy, worker_id
from data.pipeline_options import pipeline_options


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


def _train_stream(app, first_epoch, skip_steps, last_epoch):
    """Batches of epochs [first_epoch, last_epoch), skipping the first `skip_steps` of the first."""
    epochs = tf.data.Dataset.range(first_epoch, last_epoch)
    stream = epochs.flat_map(lambda e: app.build_dataset("train", epoch=e))
    return _distribute(stream.skip(skip_steps).prefetch(1))


def train(app, extra_callbacks=()):
    """Train (or resume, or extend) the run in the app's run directory; returns the final model.
    `extra_callbacks` (e.g. the benchmarks' timers) run after the runner's own."""
    cfg = app.config
    out = run_dir(app)
    if app.single_device and cfg.strategy not in ("default", "auto"):
        raise UserError(f"{app.name} trains on one device ({app.single_device}); --strategy {cfg.strategy} is not supported")
    strategy = make_strategy(cfg.strategy, cfg.tpu)  # first: multi-worker must start before any op runs
    seed_everything(cfg)
    chief = is_chief(strategy)
    print(f"strategy: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); "
          f"global batch {cfg.batch_size}")
    # Non-chief workers join every collective save but write to a private folder.
    files = out if chief else out / "workers" / f"worker-{worker_id(strategy)}"
    files.mkdir(parents=True, exist_ok=True)
    save_config(cfg, files / "config.json")

    with strategy.scope():
        model = app.build_model()
    (files / "state.json").write_text(json.dumps(app.state(), indent=2) + "\n")
    steps_per_epoch = int(app.build_dataset("train", epoch=0).cardinality())
    if steps_per_epoch <= 0:
        raise UserError("the training split gives no full batch; lower --batch_size")
    val = app.build_dataset("val")  # None: the app holds out no validation split
    val = _distribute(val) if val is not None else None
    state = TrainingState(files / "checkpoints", cfg.keep_checkpoints)
    if state.peek():
        print(f"resuming from epoch {int(state.epoch)}, step {int(state.step)} ({files / 'checkpoints'})")
    if int(state.epoch) >= cfg.epochs:
        print(f"the run already has {int(state.epoch)} epochs; pass --epochs N (> {int(state.epoch)}) to extend it")

    callbacks_common = [keras.callbacks.CSVLogger(str(files / "history.csv"), append=True),
                        keras.callbacks.TensorBoard(str(files / "logs")), *extra_callbacks]
    if isinstance(cfg, FitConfig) and cfg.early_stopping_patience:
        callbacks_common.append(keras.callbacks.EarlyStopping(patience=cfg.early_stopping_patience, restore_best_weights=False))
    phases = app.phases()
    for index, phase in enumerate(phases):
        finished = int(state.epoch) >= phase.until_epoch
        if finished and index < len(phases) - 1:
            continue
        with strategy.scope():
            if phase.prepare:
                phase.prepare(model)
            model.compile(optimizer=app.build_optimizer(app.updates_per_epoch(steps_per_epoch), phase.lr_factor),
                          **app.compile_defaults())
            model.optimizer.build(model.trainable_variables)
            state.attach(model, f"optimizer_{index}_{phase.name}_{type(model.optimizer).__name__.lower()}")
        if finished:  # nothing left to train: the restored model is saved again below
            break
        print(f"phase {phase.name!r}: epochs {int(state.epoch) + 1}..{phase.until_epoch}, "
              f"{len(model.trainable_weights)} trainable weight tensors")
        callbacks = [StopOnNonFiniteLoss(), StepCheckpoint(state, cfg.checkpoint_every_steps), *callbacks_common]
        if int(state.step) >= steps_per_epoch:  # saved after an epoch's last batch, before its end
            state.epoch.assign_add(1)
            state.step.assign(0)
        if int(state.step):  # finish the interrupted epoch first, then whole epochs
            epoch, step = int(state.epoch), int(state.step)
            model.fit(_train_stream(app, epoch, step, epoch + 1), validation_data=val, initial_epoch=epoch,
                      epochs=epoch + 1, steps_per_epoch=steps_per_epoch - step, callbacks=callbacks, verbose=_verbose(cfg), shuffle=False)
        if int(state.epoch) < phase.until_epoch and not model.stop_training:
            model.fit(_train_stream(app, int(state.epoch), 0, phase.until_epoch), validation_data=val,
                      initial_epoch=int(state.epoch), epochs=phase.until_epoch, steps_per_epoch=steps_per_epoch,
                      callbacks=callbacks, verbose=_verbose(cfg), shuffle=False)
        if model.stop_training:  # early stopping ends every phase
            break
    if chief:
        atomic_save_model(model, out / "model.keras")
        if (out / "history.csv").exists():
            plot_learning_curves(out / "history.csv", out / "learning_curves.png")
        print(f"model saved to {out / 'model.keras'}; curves in {out / 'learning_curves.png'}")
    return model


def atomic_save_model(model, path):
    """model.save to a temporary file beside `path`, then rename over it."""
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_trained(app):
    """The run's final model, with the app's learned state restored."""
    out = run_dir(app)
    path = out / "model.keras"
    if not path.is_file():
        raise UserError(f"no trained model at {path}; run `python -m apps {app.name} train` first (or pass --run_dir)")
    if (out / "state.json").is_file():
        app.load_state(json.loads((out / "state.json").read_text()))
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)  # inference only
    except (ValueError, TypeError, OSError) as e:
        raise UserError(f"cannot load {path}: {str(e).splitlines()[0]}") from None


def evaluate(app):
    model = load_trained(app)
    out = run_dir(app) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    metrics = app.evaluate(model, out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}, indent=2))
    print(f"metrics and pictures in {out}")
    return metrics


def predict(app, inputs):
    if not inputs:
        raise UserError(f"predict needs inputs: python -m apps {app.name} predict {app.predict_inputs} ...")
    model = load_trained(app)
    records = app.predict(model, inputs)
    for record in records:
        print(record)
    return records


def export(app, base_dir=None):
    """Write the app's serving module as saved_models/<app>/<version>/ under the working directory (as
    runs/ is), or under `base_dir`, atomically."""
    model = load_trained(app)
    base = Path(base_dir or Path("saved_models") / app.name)
    base.mkdir(parents=True, exist_ok=True)
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
    final = base / str(max(versions, default=0) + 1)
    module = app.serving_model(model)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=base))
    try:
        signatures = {"serving_default": module.serve.get_concrete_function(), **app.extra_signatures(module)}
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        app.export_files(model, tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"exported {final}")
    return final
