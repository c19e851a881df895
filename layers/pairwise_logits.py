"""PairwiseLogits: same-identity logits w . |e_i - e_j| + b for every pair of a batch of embeddings."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="suite")
class PairwiseLogits(keras.layers.Layer):
    """Embeddings [B, D] -> logits [B, B], logits[i, j] = w . |e_i - e_j| + b: a logistic unit on the
    absolute difference (a Dense(1) shared by every pair), the Siamese verification head of DeepFace
    (Taigman et al. 2014, weighted L1) and Koch et al. 2015. Symmetric; trained with
    layers.losses.metric_learning.PairwiseBinaryLoss, sigmoid(logits[i, j]) = P(same identity).
    Memory grows as B * B * D: meant for training batches of a few hundred images at most.

    >>> tuple(PairwiseLogits()(keras.ops.zeros((4, 8))).shape)
    (4, 4)
    """

    def __init__(self, kernel_initializer="glorot_uniform", use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = kernel_initializer
        self.use_bias = use_bias
        self.dense = keras.layers.Dense(1, use_bias=use_bias, kernel_initializer=kernel_initializer,
                                        dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        self.dense.build((None, input_shape[-1]))

    def call(self, x):
        difference = ops.abs(x[:, None, :] - x[None, :, :])
        return ops.squeeze(self.dense(difference), -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[0])

    def get_config(self):
        return {**super().get_config(), "kernel_initializer": self.kernel_initializer, "use_bias": self.use_bias}
