"""Crash-safe training checkpoints: model, optimizer and data position (epoch, step).

tf.train.CheckpointManager writes each checkpoint under a temporary name and renames it, so a
kill -9 during a save leaves the previous checkpoint intact; restore falls back to older ones
if the newest cannot be read. The data position is enough to resume the data stream, because
an app's training epoch is a pure function of (seed, epoch).
"""
import logging
import math

import keras
import tensorflow as tf

from apps.core.errors import TrainingDiverged


class TrainingState:
    """The checkpointed training position and the manager that saves it."""

    def __init__(self, directory, keep):
        self.directory = str(directory)
        self.keep = keep
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.manager = None

    def peek(self):
        """Restore only (epoch, step) from the newest readable checkpoint; False if there is none."""
        return self._restore(tf.train.Checkpoint(epoch=self.epoch, step=self.step))

    def attach(self, model, optimizer_key):
        """Track every variable of `model` (weights, BatchNorm statistics, dropout seed state) and
        of its optimizer (keyed per training phase), and restore them if a checkpoint exists.

        Variables are listed by path rather than through Keras' object graph, which does not
        expose layers held in Python lists (so their BatchNorm statistics and seeds were lost)."""
        variables = {}
        for v in model.variables:
            variables[v.path if v.path not in variables else f"{v.path}#{len(variables)}"] = v
        optimizer = {str(i): v for i, v in enumerate(model.optimizer.variables)}
        self.checkpoint = tf.train.Checkpoint(model=variables, epoch=self.epoch, step=self.step, **{optimizer_key: optimizer})
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=self.keep)
        return self._restore(self.checkpoint)

    def _restore(self, checkpoint):
        paths = tf.train.get_checkpoint_state(self.directory)
        candidates = list(reversed(paths.all_model_checkpoint_paths)) if paths else []
        for path in candidates:
            try:
                checkpoint.restore(path).expect_partial()
                return True
            except (tf.errors.OpError, ValueError, AssertionError) as e:
                logging.warning("checkpoint %s is unreadable (%s); trying an older one", path, str(e).splitlines()[0])
        return False

    def save(self):
        self.manager.save(checkpoint_number=self.epoch * 1_000_000 + self.step)


class StepCheckpoint(keras.callbacks.Callback):
    """Advance (epoch, step) after every batch; save at epoch ends and every N steps."""

    def __init__(self, state, every_steps=0):
        super().__init__()
        self.state = state
        self.every_steps = every_steps

    def on_train_batch_end(self, batch, logs=None):
        self.state.step.assign_add(1)
        if self.every_steps and int(self.state.step) % self.every_steps == 0:
            self.state.save()

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch.assign_add(1)
        self.state.step.assign(0)
        self.state.save()


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first NaN/inf loss with a clear error, before anything is saved for that step.
    (Keras' TerminateOnNaN lets BackupAndRestore delete its backup; here checkpoints are kept.)"""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise TrainingDiverged(
                f"the training loss became {float(loss)} at step {batch + 1} of this epoch; the last good checkpoint "
                "is kept. Lower --learning_rate, set --clipnorm, or check the labels for NaN/inf")
