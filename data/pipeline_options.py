"""tf.data options every pipeline of the suite ends with.

Autotuning is off: destroying an autotuned iterator blocks until its tuning thread wakes, which
made fit() return 1-5 s after on_train_end here (bench/classification_fashion_mnist.py measures
it), and with decoded data cached in memory there is nothing for it to tune on 2 cores."""
import tensorflow as tf


def pipeline_options():
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def finish(dataset):
    """Prefetch one batch and apply the suite's options."""
    return dataset.prefetch(1).with_options(pipeline_options())
