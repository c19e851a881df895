"""Small graph helpers shared by the exported signatures of image and text apps."""
import tensorflow as tf


def forget_shape(tensor):
    """`tensor` as it is, with its static shape forgotten, so that checks of its rank run on what was
    sent: a signature declared as [None] (what saved_model_cli and TF Serving's metadata show) is not
    enforced when the graph runs, and a rank check against the declared shape would be skipped."""
    shape = tf.shape(tensor, out_type=tf.int64)
    return tf.reshape(tensor, tf.boolean_mask(shape, shape >= 0))  # a shape of unknown length: unknown rank
