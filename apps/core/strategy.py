"""The `--strategy` flag: one tf.distribute strategy for every app; batch sizes are global."""
import json
import os

import tensorflow as tf

from apps.core.errors import UserError


def split_cpu(n):
    """Split the CPU into `n` logical devices (lets mirrored strategies run without GPUs).
    Must run before TensorFlow initialises its devices."""
    if n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        if len(tf.config.get_logical_device_configuration(cpu) or []) == n:
            return  # set already, as asked (a second command in one process, e.g. a notebook)
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:  # TensorFlow has started its devices: they cannot change in this process
            raise UserError(f"--cpu_devices {n} needs a fresh process: TensorFlow has already started its devices "
                            "in this one (run the command in a new process)") from None


def make_strategy(name, tpu=None):
    # Listing logical devices starts the runtime, after which multi-worker can no longer be set up.
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = tuple(d.name for d in gpus) or tuple(d.name for d in tf.config.list_logical_devices("CPU"))
        return _one_per_process(("mirrored", devices), lambda: tf.distribute.MirroredStrategy(list(devices)))
    if name == "multi-worker":
        if "TF_CONFIG" in os.environ:
            _check_tf_config(os.environ["TF_CONFIG"])
        return _one_per_process(("multi-worker", os.environ.get("TF_CONFIG")), tf.distribute.MultiWorkerMirroredStrategy)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise UserError(f"no TPU found ({str(e).splitlines()[0]}); use --strategy default, or --tpu ADDRESS") from None
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"unknown strategy {name!r}")


_made = {}


def _one_per_process(key, make):
    """One strategy object per kind and devices for the whole process, patched once (_reduce_nested). A second
    MirroredStrategy numbers its collective ops from the start again, and a second training in the process (a
    notebook, several commands in one script) failed on the first training's instance keys ("Shape mismatch in
    the collective instance 100")."""
    if key not in _made:
        _made[key] = _reduce_nested(make())
    return _made[key]


def _reduce_nested(strategy):
    """Keras 3's fit() calls strategy.reduce on a whole (x, y) batch, and with axis=0 on scalar
    metrics; MultiWorkerMirroredStrategy accepts neither (keras-team/keras#20585). Reduce each
    leaf on its own, over replicas only for scalars. Patched on this one strategy object only.

    The batch is averaged over replicas (MEAN, no axis) only to build the model from its shapes: a local
    batch does that, and the sum failed, in both mirrored strategies, where replicas hold batches of different
    sizes (an odd global batch on two replicas, the last batch of a validation split)."""
    reduce = strategy.reduce

    def reduce_one(reduce_op, value, axis):
        local = strategy.experimental_local_results(value)[0]
        if axis is None and local.shape.rank and str(reduce_op).upper().endswith("MEAN"):
            return local
        if axis is not None and local.shape.rank == 0:
            axis = None
        return reduce(reduce_op, value, axis)

    def reduce_each(reduce_op, value, axis=None):
        return tf.nest.map_structure(lambda v: reduce_one(reduce_op, v, axis), value)

    strategy.reduce = reduce_each
    return strategy


def _check_tf_config(text):
    try:
        cfg = json.loads(text)
        cfg["cluster"]["worker"], cfg["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise UserError("TF_CONFIG must be JSON with cluster.worker and task.index (see README, 'Distribution')") from None


def is_chief(strategy):
    """True on the one worker that writes the run's files (every process when not multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", lambda: None)().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (resolver.task_type == "worker" and resolver.task_id == 0
                                                     and "chief" not in resolver.cluster_spec().as_dict())


def worker_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return getattr(resolver, "task_id", 0) or 0
