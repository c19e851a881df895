"""Label-smoothed, padding-masked cross-entropy and token accuracy: known values, the gradient, and configs
saved before the move from layers/sequence_loss.py."""
import keras
import numpy as np
import tensorflow as tf

from data.text.subword import PAD
from layers.losses.sequence import MaskedSmoothedCrossEntropy, MaskedTokenAccuracy


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_known_value_ignores_padding():
    logits = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    target = np.array([[1, 4, 0], [2, 0, 0]])
    lp = _log_softmax(logits.astype(np.float64))
    e = 0.1
    tokens = [(0, 0), (0, 1), (1, 0)]
    expected = np.mean([-(1 - e) * lp[b, t, target[b, t]] - e * lp[b, t].mean() for b, t in tokens])
    got = float(MaskedSmoothedCrossEntropy(e)(target, logits))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    changed = logits.copy()
    changed[0, 2] += 100.0  # a padding position's logits do not matter
    np.testing.assert_allclose(float(MaskedSmoothedCrossEntropy(e)(target, changed)), expected, rtol=1e-5)


def test_gradient_matches_the_closed_form():
    """d loss / d logits = (softmax - ((1 - e) onehot + e / V)) / real tokens, zero on padding."""
    logits = tf.constant(np.random.default_rng(1).normal(size=(2, 3, 4)), tf.float32)
    target = np.array([[1, 3, 0], [2, 2, 0]])
    e = 0.2
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = MaskedSmoothedCrossEntropy(e)(target, logits)
    grad = tape.gradient(loss, logits).numpy()
    p = np.exp(_log_softmax(logits.numpy().astype(np.float64)))
    wanted = (p - ((1 - e) * np.eye(4)[target] + e / 4)) / 4.0
    wanted[target == PAD] = 0.0
    np.testing.assert_allclose(grad, wanted, atol=1e-6)
    numeric = tf.test.compute_gradient(lambda z: MaskedSmoothedCrossEntropy(e)(target, z), [logits], delta=1e-3)[1][0]
    np.testing.assert_allclose(numeric.reshape(grad.shape), grad, atol=2e-3)


def test_token_accuracy_counts_real_tokens_only():
    metric = MaskedTokenAccuracy()
    logits = np.eye(5)[[[1, 2, 3], [4, 4, 4]]]  # predicts 1,2,3 / 4,4,4
    metric.update_state(np.array([[1, 0, 0], [4, 1, 0]]), logits)
    np.testing.assert_allclose(float(metric.result()), 2 / 3)


def test_configs_saved_under_the_old_module_path_still_load():
    """Keras finds them by registered name ("suite>..."), whatever module the saved config names."""
    for obj in (MaskedSmoothedCrossEntropy(0.1), MaskedTokenAccuracy()):
        config = keras.saving.serialize_keras_object(obj)
        assert config["registered_name"] == f"suite>{type(obj).__name__}"
        config["module"] = "layers.sequence_loss"
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is type(obj) and again.get_config() == obj.get_config()
