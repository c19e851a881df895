"""Token-level loss and accuracy for sequence outputs, ignoring padding (the subword PAD id).

Label smoothing (Szegedy et al. 2016, used by Vaswani et al. 2017) spreads `smoothing` of the target
mass uniformly over the vocabulary: loss = (1 - e) * NLL(target) + e * mean over v of -log p(v).
The loss is averaged over real tokens only, so long and short batches weigh each token the same.
Both are registered as "suite>MaskedSmoothedCrossEntropy" and "suite>MaskedTokenAccuracy", names that do
not depend on this module's path, so models saved when they lived in layers/sequence_loss.py still load.

    loss = MaskedSmoothedCrossEntropy(smoothing=0.1)(target_ids, logits)
"""
import keras
from keras import ops

from data.text.subword import PAD


@keras.saving.register_keras_serializable(package="suite")
class MaskedSmoothedCrossEntropy(keras.losses.Loss):
    def __init__(self, smoothing=0.0, name="masked_smoothed_cross_entropy", reduction="sum", **kwargs):
        # `reduction` is a parameter because get_config saves it: a saved loss is rebuilt with it
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        nll = -ops.squeeze(ops.take_along_axis(log_p, y_true[..., None], axis=-1), -1)
        loss = (1.0 - self.smoothing) * nll - self.smoothing * ops.mean(log_p, axis=-1)
        mask = ops.cast(ops.not_equal(y_true, PAD), "float32")
        return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


@keras.saving.register_keras_serializable(package="suite")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens whose argmax prediction is right."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, PAD), "float32")
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        self.correct.assign_add(ops.sum(hit * mask))
        self.total.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)
