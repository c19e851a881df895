"""Crash-safe training checkpoints: model, optimizer and data position (epoch, step).

tf.train.CheckpointManager writes each checkpoint under a temporary name and renames it, so a
kill -9 during a save leaves the previous checkpoint intact. Resuming takes the newest checkpoint
that can be read in full (every tensor, checksums included) and falls back to an older one only
when a newer one cannot be read (a truncated file, an I/O error). Whether a checkpoint *fits* the
model is a separate question, answered by comparing fingerprints (the path, shape and dtype of
every variable): a checkpoint that does not fit is never skipped for an older one, it stops the
run (see apps.core.runner). The data position is enough to resume the data stream, because an
app's training epoch is a pure function of (seed, epoch).
"""
import collections
import math
import re
import sys

import keras
import tensorflow as tf

from apps.core.errors import TrainingDiverged, UserError

Saved = collections.namedtuple("Saved", "path epoch step variables")  # variables: {checkpoint key: (shape, dtype)}
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


# A SeedGenerator is auto-named with a process-wide counter (seed_generator_3): the number says how
# many were made before it in this process, nothing about the model, so checkpoint keys and fingerprints
# leave it out (else a run trained after another in one process kept its dropout seeds under keys that a
# resume in a fresh process did not find, and went on with other masks).
_AUTO_NUMBER = re.compile(r"(seed_generator)_\d+")
_REPEATED = re.compile(r"#\d+$")  # model_variables' suffix for a path met again (two seed generators in one place)


def _canonical(name):
    return _REPEATED.sub("", _AUTO_NUMBER.sub(r"\1", name))


def model_variables(model):
    """Every variable of `model` (weights, BatchNorm statistics, dropout seed state) by canonical path, the
    keys its checkpoints use. Listed by path rather than through Keras' object graph, which does not expose
    layers held in Python lists (so their BatchNorm statistics and seeds were lost)."""
    variables = {}
    for v in model.variables:
        path = _canonical(v.path)
        variables[path if path not in variables else f"{path}#{len(variables)}"] = v
    return variables


def _entry(name, v):
    return [name, [int(d) for d in v.shape], str(tf.as_dtype(v.dtype).name)]


def fingerprint(model):
    """[[path, shape, dtype], ...] of the model's variables, in the model's order."""
    return [_entry(_canonical(k), v) for k, v in model_variables(model).items()]


def optimizer_fingerprint(optimizer):
    """[[path, shape, dtype], ...] of the optimizer's variables, without the optimizer's own name (adam_2/...),
    which is numbered process-wide as a SeedGenerator's is."""
    return [_entry(_canonical(v.path.split("/", 1)[-1]), v) for v in optimizer.variables]


def _unescape(key):
    """A name from a tf.train.Checkpoint key, which doubles "." and spells "/" as ".S"."""
    return re.sub(r"\.(.)", lambda m: "/" if m.group(1) == "S" else m.group(1), key)


def saved_fingerprint(saved, optimizer_key):
    """(model fingerprint, optimizer fingerprint or None) of a checkpoint, from its index. The
    optimizer's variables are kept by position there, so its entries are named by index."""
    model, optimizer = [], {}
    for key, (shape, dtype) in saved.variables.items():
        if not key.endswith(_VALUE):
            continue
        head, _, rest = key[:-len(_VALUE)].partition("/")
        if head == "model":
            model.append([_canonical(_unescape(rest)), shape, dtype])
        elif head == optimizer_key and rest.isdigit():
            optimizer[int(rest)] = [f"variable {rest}", shape, dtype]
    return model, [optimizer[i] for i in sorted(optimizer)] if optimizer else None


def _describe(shape, dtype, other_dtype):
    return f"{tuple(shape)}" + (f" {dtype}" if dtype != other_dtype else "")


def difference(there, now, by_position=False):
    """The first difference between two fingerprints as words ("x is (3, 3) there, (3, 5) now"), or None.
    `by_position`: compare entries in order (a checkpoint's optimizer, whose names are indices)."""
    if by_position:
        for i, (a, b) in enumerate(zip(there, now)):
            if a[1:] != b[1:]:
                return f"{b[0]} ({a[0]}) is {_describe(a[1], a[2], b[2])} there, {_describe(b[1], b[2], a[2])} now"
        if len(there) != len(now):
            return f"it has {len(there)} variables there, {len(now)} now"
        return None
    before = {name: (shape, dtype) for name, shape, dtype in there}
    names = {name for name, _, _ in now}
    gone = next((name for name, _, _ in there if name not in names), None)
    for name, shape, dtype in now:
        if name not in before:
            return f"{name} is new (not in the run)" + (f", and {gone} is in the run but not now" if gone else "")
        if [list(before[name][0]), before[name][1]] != [list(shape), dtype]:
            (s, d) = before[name]
            return f"{name} is {_describe(s, d, dtype)} there, {_describe(shape, dtype, d)} now"
    return f"{gone} is in the run but not now" if gone else None


class TrainingState:
    """The checkpointed training position and the manager that saves it."""

    def __init__(self, directory, keep):
        self.directory = str(directory)
        self.keep = keep
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.manager = None
        self.variables = {}

    def find(self):
        """The newest checkpoint that reads in full, as Saved; None if there is none. Newer ones that
        cannot be read are reported and skipped; if none can be read, the run stops (a UserError)
        rather than start again from random weights over them."""
        paths = tf.train.get_checkpoint_state(self.directory)
        candidates = list(reversed(paths.all_model_checkpoint_paths)) if paths else []
        problems = []
        for path in candidates:
            try:
                saved = _read_in_full(path)
            except Exception as e:  # noqa: BLE001 (the reader maps damage to IndexError, ValueError, OpError...)
                problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                problems.append(f"{path}: {problem}")
                print(f"warning: checkpoint {path} cannot be read ({problem}); trying the one before", file=sys.stderr)
                continue
            return saved
        if candidates:
            raise UserError(f"none of the {len(candidates)} checkpoints in {self.directory} can be read ({problems[0]}); "
                            "move the folder away to start over, or use another --run_dir")
        return None

    def attach(self, model, optimizer_key, restore=None):
        """Track every variable of `model` and of its optimizer (keyed per training phase) and, given a
        Saved checkpoint, restore them from it (a checkpoint that fits and reads in full)."""
        variables = model_variables(model)
        optimizer = {str(i): v for i, v in enumerate(model.optimizer.variables)}
        self.variables = {**{f"model/{k}": v for k, v in variables.items()},
                          **{f"{optimizer_key}/{k}": v for k, v in optimizer.items()}}
        self.checkpoint = tf.train.Checkpoint(model=variables, epoch=self.epoch, step=self.step, **{optimizer_key: optimizer})
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=self.keep)
        if restore is not None:
            try:
                self.checkpoint.restore(restore.path).expect_partial()
            except (tf.errors.OpError, ValueError, AssertionError) as e:
                raise UserError(f"cannot restore {restore.path}: {str(e).strip().splitlines()[0]}") from None
        return restore is not None

    def non_finite(self):
        """The name of the first tracked floating-point variable holding a NaN or an infinity, or None."""
        for name, v in self.variables.items():
            if tf.as_dtype(v.dtype).is_floating and not bool(tf.reduce_all(tf.math.is_finite(v))):
                return name
        return None

    def save(self):
        """Save a checkpoint, if every variable is finite (else TrainingDiverged: the last good one stays)."""
        bad = self.non_finite()
        if bad is not None:
            raise TrainingDiverged(
                f"{bad} holds NaN or infinite values after epoch {int(self.epoch)}, step {int(self.step)}; no checkpoint "
                "is saved and the last good one is kept. Lower --learning_rate, set --clipnorm, or check the data")
        try:
            self.manager.save(checkpoint_number=self.epoch * 1_000_000 + self.step)
        except tf.errors.OpError as e:
            raise UserError(f"cannot save a checkpoint in {self.directory}: {str(e).strip().splitlines()[0]}; "
                            "the last good checkpoint is kept") from None


def _read_in_full(path):
    """Saved for `path`, after reading every tensor (a truncated or damaged file fails here)."""
    reader = tf.train.load_checkpoint(path)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    for key in shapes:
        reader.get_tensor(key)
    epoch, step = (int(reader.get_tensor(f"{name}{_VALUE}")) for name in ("epoch", "step"))
    return Saved(path, epoch, step, {k: ([int(d) for d in shapes[k]], dtypes[k].name) for k in shapes})


class StepCheckpoint(keras.callbacks.Callback):
    """Advance (epoch, step) after every batch; save at epoch ends and every N steps. An epoch's last
    step is saved by the epoch end only (after validation and the history row, which come before it in
    the callback list): a save there would let a kill before the epoch end skip its validation."""

    def __init__(self, state, every_steps=0, steps_per_epoch=None):
        super().__init__()
        self.state = state
        self.every_steps = every_steps
        self.steps_per_epoch = steps_per_epoch

    def on_train_batch_end(self, batch, logs=None):
        self.state.step.assign_add(1)
        step = int(self.state.step)
        last = self.steps_per_epoch is not None and step >= self.steps_per_epoch
        if self.every_steps and step % self.every_steps == 0 and not last:
            self.state.save()

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch.assign_add(1)
        self.state.step.assign(0)
        self.state.save()


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first NaN/inf training or validation loss with a clear error, before anything is
    saved for that step or epoch. (Keras' TerminateOnNaN lets BackupAndRestore delete its backup;
    here checkpoints are kept.)"""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise TrainingDiverged(
                f"the training loss became {float(loss)} at step {batch + 1} of this epoch; the last good checkpoint "
                "is kept. Lower --learning_rate, set --clipnorm, or check the labels for NaN/inf")

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise TrainingDiverged(
                f"the validation loss became {float(loss)} after epoch {epoch + 1}; the last good checkpoint is kept. "
                "Lower --learning_rate, set --clipnorm, or check the validation data for NaN/inf")
