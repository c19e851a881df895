"""In-graph checks of the string batches that text exports take (translations' `sentences`, word vectors'
`words`): what a SavedModel does with a request its signature declares but does not enforce."""
import tensorflow as tf

from data.tensors import forget_shape


def checked_text(texts, name, what):
    """`texts` after in-graph checks that it is a non-empty 1-D batch of valid UTF-8 strings; the errors
    name the input `name` (and the bad indices); `what` names one element in the empty-batch message."""
    texts = forget_shape(texts)
    checks = [tf.debugging.assert_rank(texts, 1, message=f"`{name}` must be a 1-D batch of strings"),
              tf.debugging.assert_greater(tf.size(texts), 0, message=f"`{name}` is empty: send at least one {what}")]
    with tf.control_dependencies(checks):
        texts = tf.reshape(texts, [-1])
        # decoding with errors="ignore" drops invalid bytes, so only valid UTF-8 comes back unchanged
        valid = tf.equal(tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="ignore"), texts)
        checks.append(tf.debugging.Assert(tf.reduce_all(valid), [
            f"`{name}` holds text that is not valid UTF-8, at indices:", tf.where(~valid)[:, 0]], summarize=16))
    with tf.control_dependencies(checks):
        return tf.identity(texts)
