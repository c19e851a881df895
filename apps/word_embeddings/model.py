"""Skip-gram / CBOW with negative sampling: two embedding tables and a sparse SGD step.

The step writes the gradient of the sigmoid cross-entropy out by hand (it is d = sigmoid(x) - label
for every scored pair) and updates only the rows a batch touches, with scatter-subtract: no dense
gradient of a [V, D] table, no autodiff tape, no optimizer slots. Losses are summed over pairs, as
word2vec's per-pair SGD does; a heavily used row's step is damped (`_row_step_sizes`); the learning
rate comes from the run's schedule (linear decay). tests/apps/test_word_embeddings_model.py checks
the steps against autodiff.
"""
import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="suite")
class WordEmbeddings(keras.Model):
    """`vectors` (the word vectors, word2vec's syn0) and `context_vectors` (syn1neg) of a vocabulary.

    >>> model = WordEmbeddings(vocabulary_size=1000, dim=50)
    >>> model(tf.constant([[3, 7]])).shape   # calling it looks words up
    TensorShape([1, 2, 50])
    """

    def __init__(self, vocabulary_size, dim, cbow=False, trust=1.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.dim = dim
        self.cbow = cbow
        self.trust = trust
        self.seed = seed
        # word2vec's start: word vectors uniform in +-0.5/dim, context vectors zero.
        init = keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim, seed=seed)
        self.vectors = self.add_weight(shape=(vocabulary_size, dim), initializer=init, name="vectors")
        self.context_vectors = self.add_weight(shape=(vocabulary_size, dim), initializer="zeros", name="context_vectors")
        self.built = True  # the tables are the whole model

    def call(self, ids):
        return tf.gather(self.vectors, ids)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "dim": self.dim,
                "cbow": self.cbow, "trust": self.trust, "seed": self.seed}

    def steps(self, buckets, lr):
        """The loss summed over the scored pairs, their number, and the SGD steps (lr * gradient,
        damped, see `_row_step_sizes`; CBOW's word-vector steps follow word2vec, see `_score`) as
        lists of (ids, rows) for the word vectors and for the context vectors, one per bucket."""
        scored = [self._score(bucket) for bucket in buckets]
        sizes = {}
        for side in ("in", "out"):  # a row's curvature is summed over every bucket before any step
            per_row = tf.add_n([tf.math.unsorted_segment_sum(tf.reshape(s["curv_" + side], [-1]),
                                                             tf.reshape(s["ids_" + side], [-1]), self.vocabulary_size)
                                for s in scored])
            sizes[side] = _row_step_sizes(per_row, lr, self.trust)
        steps_in, steps_out = [], []
        for s in scored:
            step_in, step_out = s["steps"](tf.gather(sizes["in"], s["ids_in"]), tf.gather(sizes["out"], s["ids_out"]))
            steps_in.append((s["ids_in"], step_in))
            steps_out.append((s["ids_out"], step_out))
        return tf.add_n([s["loss"] for s in scored]), tf.add_n([s["pairs"] for s in scored]), steps_in, steps_out

    def _score(self, batch):
        """Logits, loss and curvature of one bucket, and a function from step sizes to its steps."""
        inputs, mask = batch["inputs"], batch["input_mask"]
        outputs, weight = batch["outputs"], batch["output_weight"]
        # sparse_read gathers in place; tf.gather(variable) would first copy the whole table, which
        # TensorFlow does on every read of a variable that sparse updates have touched
        x_in = self.vectors.value.sparse_read(inputs)  # [G, M, D]
        x_out = self.context_vectors.value.sparse_read(outputs)  # [G, 1+k, D]
        label = tf.one_hot(tf.zeros_like(outputs[:, 0]), tf.shape(outputs)[1])  # [G, 1+k]: the positive first
        sq_out = tf.reduce_sum(tf.square(x_out), axis=-1)  # [G, 1+k]
        if self.cbow:  # the mean of the window predicts the centre
            # As in word2vec.c and gensim (cbow_mean), every context word gets the whole gradient of
            # the mean h, not its 1/count share: with the share, word vectors barely left their start.
            count = tf.reduce_sum(mask, axis=1, keepdims=True)
            share = mask / tf.maximum(count, 1.0)  # [G, M]: d h / d x_in
            h = tf.einsum("gmd,gm->gd", x_in, share)
            logits = tf.einsum("gd,god->go", h, x_out)
            loss_weight = weight * tf.cast(count > 0, tf.float32)
            p = tf.sigmoid(logits)
            delta = loss_weight * (p - label)  # d loss / d logits, [G, 1+k]
            bend = loss_weight * p * (1 - p)  # d2 loss / d logits2
            grad_h = tf.einsum("go,god->gd", delta, x_out)
            curv_in = tf.reduce_sum(bend * sq_out, 1, keepdims=True) * share  # along the whole-gradient step
            curv_out = bend * tf.reduce_sum(tf.square(h), -1, keepdims=True)
            pairs = tf.reduce_sum(tf.cast(count > 0, tf.float32))

            def steps(size_in, size_out):
                return (mask * size_in)[:, :, None] * grad_h[:, None, :], (delta * size_out)[:, :, None] * h[:, None, :]
        else:  # every input word predicts the group's output words
            logits = tf.matmul(x_in, x_out, transpose_b=True)  # [G, M, 1+k]
            loss_weight = mask[:, :, None] * weight[:, None, :]
            label = label[:, None, :]
            p = tf.sigmoid(logits)
            delta = loss_weight * (p - label)
            bend = loss_weight * p * (1 - p)
            curv_in = tf.reduce_sum(bend * sq_out[:, None, :], 2)
            curv_out = tf.reduce_sum(bend * tf.reduce_sum(tf.square(x_in), axis=-1)[:, :, None], 1)
            pairs = tf.reduce_sum(mask)

            def steps(size_in, size_out):
                return (tf.matmul(delta * size_in[:, :, None], x_out),
                        tf.matmul(delta * size_out[:, None, :], x_in, transpose_a=True))
        # sigmoid cross-entropy from logits, summed over the scored pairs
        loss = tf.reduce_sum(loss_weight * (tf.nn.softplus(logits) - label * logits))
        return {"ids_in": inputs, "curv_in": curv_in, "ids_out": outputs, "curv_out": curv_out, "loss": loss,
                "pairs": pairs, "steps": steps}

    def sgd_step(self, buckets):
        """One SGD step on one chunk's buckets of groups; returns (loss summed over pairs, pairs)."""
        lr = tf.cast(self.optimizer.learning_rate, tf.float32)
        loss, pairs, steps_in, steps_out = self.steps(buckets, lr)
        for table, updates in ((self.vectors, steps_in), (self.context_vectors, steps_out)):
            for ids, step in updates:
                table.value.scatter_sub(tf.IndexedSlices(tf.reshape(step, [-1, self.dim]), tf.reshape(ids, [-1])))
        self.optimizer.iterations.assign_add(1)
        return loss, pairs

    def train_step(self, batch):
        """SGD steps on the chunks of a batch (buckets of tensors ragged as [chunks, groups, ...]), one
        after the other: the same updates as one fit() step per chunk, without Keras' per-step overhead."""
        def one_chunk(i, loss, pairs):
            chunk = tf.nest.map_structure(lambda v: v.values[v.row_splits[i]:v.row_splits[i + 1]], batch)
            chunk_loss, chunk_pairs = self.sgd_step(chunk)
            return i + 1, loss + chunk_loss, pairs + chunk_pairs

        n = tf.cast(batch[0]["outputs"].nrows(), tf.int32)
        _, loss, pairs = tf.while_loop(lambda i, *_: i < n, one_chunk, (0, 0.0, 0.0))
        return {"loss": loss / tf.maximum(pairs, 1.0), "pairs": pairs,
                "learning_rate": tf.cast(self.optimizer.learning_rate, tf.float32)}


def _row_step_sizes(per_row_curvature, lr, trust):
    """The step size of every row: lr, shrunk to trust / curvature where lr * curvature exceeds trust,
    the curvature being the row's second derivative of the loss summed over its uses in the batch
    (sigmoid'(x) * |other vector|^2 per use).

    word2vec's sequential SGD damps a frequent row as it goes (each update lowers the next
    gradient); a batch sums all of a row's stale gradients at once, and frequent rows overshot and
    diverged in steps of 2,000+ words. Rows used a few times, and all rows while the vectors are
    small, get plain SGD."""
    return lr * tf.minimum(1.0, trust / tf.maximum(lr * per_row_curvature, 1e-12))


def normalized(vectors):
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
