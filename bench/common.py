"""Shared measuring tools of the benchmarks: matmul peak, model FLOPs, step timers, app flags."""
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def matmul_peak_gflops(n=2048, repeats=10, trials=5):
    """Best float32 matmul rate (GFLOP/s) of this machine right now: the MFU denominator."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))

    @tf.function
    def chain(a, b):
        c = a
        for _ in range(repeats):
            c = tf.matmul(c, b) * 1e-3
        return c

    chain(a, b).numpy()
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        chain(a, b).numpy()
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def forward_flops(model, input_shape):
    """FLOPs of one forward pass of one example, counted by TensorFlow's graph profiler."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1, *input_shape), tf.float32))
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


class StepTimer(keras.callbacks.Callback):
    """Wall-clock time of every training step, from callback timestamps (not fit() wall time)."""

    def __init__(self):
        super().__init__()
        self.step_times = []
        self.train_end = None
        self._last = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last is None:
            self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.step_times.append(now - self._last)
        self._last = now

    def on_epoch_end(self, epoch, logs=None):
        self._last = None  # validation time is not a training step

    def on_train_end(self, logs=None):
        self.train_end = time.perf_counter()

    def steady_step_time(self, skip=20):
        times = self.step_times[skip:] if len(self.step_times) > 2 * skip else self.step_times
        return statistics.median(times)


def app_flags(extra):
    """['--key', 'value', '--k2=v2'] -> {'key': 'value', 'k2': 'v2'}."""
    flags, rest = {}, list(extra)
    while rest:
        key = rest.pop(0)
        if not key.startswith("--"):
            sys.exit(f"unexpected argument {key!r}: app flags come as --key value")
        if "=" in key:
            key, value = key.split("=", 1)
        elif rest:
            value = rest.pop(0)
        else:
            sys.exit(f"app flag {key} needs a value")
        flags[key[2:]] = value
    return flags


class Budget(keras.callbacks.Callback):
    """Epoch-end times and steps since it was made, and (with `seconds`) a stop once that much wall time
    has passed (`hit` then True): training at a fixed time budget."""

    def __init__(self, seconds=None):
        super().__init__()
        self.start, self.seconds, self.epoch_ends, self.hit, self.steps = time.perf_counter(), seconds, [], False, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.seconds and time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = self.hit = True

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(time.perf_counter() - self.start)


def configured_app(app_cls, flags, prefix, run_dir=None):
    """An app with its defaults, `flags` ({dotted key: value}) on top, line progress, in `run_dir` (else a new
    temporary folder named `prefix`...)."""
    from apps.core.config import apply_overrides

    out = Path(run_dir or tempfile.mkdtemp(prefix=prefix))
    return app_cls(apply_overrides(app_cls.Config(), {"run_dir": str(out), "verbose": "line", **flags}))


def time_calls(fn, warmup, calls, digits=2):
    """Milliseconds of `calls` calls of fn() after `warmup` untimed ones: median, min, max."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_ms": round(1000 * statistics.median(times), digits), "min_ms": round(1000 * min(times), digits),
            "max_ms": round(1000 * max(times), digits), "calls": calls}
