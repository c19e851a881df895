"""Skip-gram / CBOW with negative sampling: two embedding tables and a sparse SGD step.

The step writes the gradient of the sigmoid cross-entropy out by hand (it is d = sigmoid(x) - label
for every scored pair) and updates only the rows a batch touches, with scatter-subtract: no dense
gradient of a [V, D] table, no autodiff tape, no optimizer slots. Losses are summed over pairs, as
word2vec's per-pair SGD does, and the learning rate comes from the run's schedule (linear decay).
tests/apps/test_word_embeddings_model.py checks the gradients against autodiff.
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

    def steps(self, batch, lr):
        """The loss summed over the scored pairs, their number, and the SGD steps (lr * gradient,
        damped, see `_step_sizes`) as (ids, rows) for the word vectors and for the context vectors."""
        inputs, mask = batch["inputs"], batch["input_mask"]
        outputs, weight = batch["outputs"], batch["output_weight"]
        x_in = tf.gather(self.vectors, inputs)  # [G, M, D]
        x_out = tf.gather(self.context_vectors, outputs)  # [G, 1+k, D]
        label = tf.one_hot(tf.zeros_like(outputs[:, 0]), tf.shape(outputs)[1])  # [G, 1+k]: the positive first
        sq_out = tf.reduce_sum(tf.square(x_out), axis=-1)  # [G, 1+k]
        size = lambda ids, curvature: _step_sizes(ids, curvature, lr, self.trust, self.vocabulary_size)
        if self.cbow:  # the mean of the window predicts the centre
            count = tf.reduce_sum(mask, axis=1, keepdims=True)
            share = mask / tf.maximum(count, 1.0)  # [G, M]: d h / d x_in
            h = tf.einsum("gmd,gm->gd", x_in, share)
            logits = tf.einsum("gd,god->go", h, x_out)
            loss_weight = weight * tf.cast(count > 0, tf.float32)
            p = tf.sigmoid(logits)
            delta = loss_weight * (p - label)  # d loss / d logits, [G, 1+k]
            bend = loss_weight * p * (1 - p)  # d2 loss / d logits2
            grad_h = tf.einsum("go,god->gd", delta, x_out)
            step_in = (share * size(inputs, tf.reduce_sum(bend * sq_out, 1, keepdims=True) * tf.square(share)))[:, :, None] * grad_h[:, None, :]
            step_out = (delta * size(outputs, bend * tf.reduce_sum(tf.square(h), -1, keepdims=True)))[:, :, None] * h[:, None, :]
            pairs = tf.reduce_sum(tf.cast(count > 0, tf.float32))
        else:  # every input word predicts the group's output words
            logits = tf.matmul(x_in, x_out, transpose_b=True)  # [G, M, 1+k]
            loss_weight = mask[:, :, None] * weight[:, None, :]
            label = label[:, None, :]
            p = tf.sigmoid(logits)
            delta = loss_weight * (p - label)
            bend = loss_weight * p * (1 - p)
            sq_in = tf.reduce_sum(tf.square(x_in), axis=-1)  # [G, M]
            step_in = tf.matmul(delta * size(inputs, tf.einsum("gmo,go->gm", bend, sq_out))[:, :, None], x_out)
            step_out = tf.matmul(delta * size(outputs, tf.einsum("gmo,gm->go", bend, sq_in))[:, None, :], x_in, transpose_a=True)
            pairs = tf.reduce_sum(mask)
        # sigmoid cross-entropy from logits, summed over the scored pairs
        loss = tf.reduce_sum(loss_weight * (tf.nn.softplus(logits) - label * logits))
        return loss, pairs, (inputs, step_in), (outputs, step_out)

    def train_step(self, batch):
        lr = tf.cast(self.optimizer.learning_rate, tf.float32)
        loss, pairs, *updates = self.steps(batch, lr)
        for table, (ids, step) in zip((self.vectors, self.context_vectors), updates):
            table.value.scatter_sub(tf.IndexedSlices(tf.reshape(step, [-1, self.dim]), tf.reshape(ids, [-1])))
        self.optimizer.iterations.assign_add(1)
        return {"loss": loss / tf.maximum(pairs, 1.0), "pairs": pairs, "learning_rate": lr}


def _step_sizes(ids, curvature, lr, trust, vocabulary_size):
    """The step size of every use of every row: lr, shrunk to trust / curvature where lr * curvature
    exceeds trust, the curvature being the row's second derivative of the loss summed over its uses
    in the batch (sigmoid'(x) * |other vector|^2 per use).

    word2vec's sequential SGD damps a frequent row as it goes (each update lowers the next
    gradient); a batch sums all of a row's stale gradients at once, and frequent rows overshot and
    diverged in steps of 2,000+ words. Rows used a few times, and all rows while the vectors are
    small, get plain SGD. The curvature is summed into a dense [V] vector: cheap, and no unique()."""
    per_row = tf.math.unsorted_segment_sum(tf.reshape(curvature, [-1]), tf.reshape(ids, [-1]), vocabulary_size)
    size = lr * tf.minimum(1.0, trust / tf.maximum(lr * per_row, 1e-12))
    return tf.gather(size, ids)


def normalized(vectors):
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
