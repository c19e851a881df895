"""Segmentation losses: known values against NumPy, the ignore label, class weights, finite gradients,
and save/reload of their configs."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from layers.losses.segmentation import (SegmentationCrossEntropy, SegmentationCrossEntropyDice, SegmentationDice,
                                        make_loss)


def _softmax(z):
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _case(seed=0, shape=(2, 5, 6), classes=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*shape, classes)).astype("float32") * 2
    labels = rng.integers(0, classes, size=shape)
    labels[rng.random(shape) < 0.3] = 255
    return labels, logits


def numpy_cross_entropy(labels, logits, weights=None):
    p = _softmax(logits.astype(np.float64))
    keep = labels != 255
    y = labels[keep]
    nll = -np.log(p[keep][np.arange(len(y)), y])
    w = np.ones(len(y)) if weights is None else np.asarray(weights)[y]
    return (w * nll).sum() / w.sum()


def numpy_dice(labels, logits):
    p = _softmax(logits.astype(np.float64))
    keep = labels != 255
    losses = []
    for c in range(logits.shape[-1]):
        t = (labels == c) & keep
        if t.sum() == 0:
            continue
        q = p[..., c] * keep
        losses.append(1 - 2 * (t * q).sum() / (t.sum() + q.sum()))
    return np.mean(losses)


def test_cross_entropy_known_value_ignores_255():
    labels, logits = _case()
    expected = numpy_cross_entropy(labels, logits)
    np.testing.assert_allclose(float(SegmentationCrossEntropy()(labels, logits)), expected, rtol=1e-5)
    changed = logits.copy()
    changed[labels == 255] += np.random.default_rng(3).normal(size=(changed[labels == 255].shape)) * 50
    np.testing.assert_allclose(float(SegmentationCrossEntropy()(labels, changed)), expected, rtol=1e-5)
    # a trailing channel axis on the masks is accepted
    np.testing.assert_allclose(float(SegmentationCrossEntropy()(labels[..., None], logits)), expected, rtol=1e-5)


def test_cross_entropy_equals_keras_without_ignored_pixels():
    labels, logits = _case(seed=1)
    labels[labels == 255] = 0
    keras_value = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(float(SegmentationCrossEntropy()(labels, logits)), float(keras_value), rtol=1e-5)


def test_class_weights_known_value():
    """sum(w[y] nll) / sum(w[y]): a hand-sized case, then random ones against NumPy."""
    logits = np.log(np.array([[[[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]]]], "float32"))  # 1 x 1 x 3 pixels
    labels = np.array([[[0, 1, 255]]])
    w = [1.0, 3.0]
    expected = (1 * -np.log(0.5) + 3 * -np.log(0.75)) / 4
    np.testing.assert_allclose(float(SegmentationCrossEntropy(class_weights=w)(labels, logits)), expected, rtol=1e-5)
    labels, logits = _case(seed=2)
    w = [0.2, 1.0, 2.5, 4.0]
    np.testing.assert_allclose(float(SegmentationCrossEntropy(class_weights=w)(labels, logits)),
                               numpy_cross_entropy(labels, logits, w), rtol=1e-5)
    with pytest.raises(ValueError, match="3 class weights for 4 classes"):
        SegmentationCrossEntropy(class_weights=[1, 2, 3])(labels, logits)


def test_dice_known_value():
    """Two classes, batch Dice over the non-ignored pixels, mean over the classes in the truth."""
    probs = np.array([[[[0.8, 0.2], [0.4, 0.6], [0.1, 0.9], [0.5, 0.5]]]])
    labels = np.array([[[0, 1, 1, 255]]])
    logits = np.log(probs).astype("float32")
    d0 = 1 - 2 * 0.8 / (1 + (0.8 + 0.4 + 0.1))
    d1 = 1 - 2 * (0.6 + 0.9) / (2 + (0.2 + 0.6 + 0.9))
    np.testing.assert_allclose(float(SegmentationDice()(labels, logits)), (d0 + d1) / 2, rtol=1e-5)
    labels, logits = _case(seed=4)
    labels[labels == 3] = 0  # class 3 absent from the truth: left out of the mean
    np.testing.assert_allclose(float(SegmentationDice()(labels, logits)), numpy_dice(labels, logits), rtol=1e-5)


def test_dice_of_a_perfect_prediction_is_zero_and_all_ignored_is_zero():
    labels = np.array([[[0, 1], [2, 255]]])
    logits = (np.eye(3)[np.where(labels == 255, 0, labels)] * 40).astype("float32")
    assert float(SegmentationDice()(labels, logits)) == pytest.approx(0.0, abs=1e-5)
    assert float(SegmentationDice()(np.full((1, 2, 2), 255), logits)) == 0.0
    assert float(SegmentationCrossEntropy()(np.full((1, 2, 2), 255), logits)) == 0.0


def test_sum_and_factory():
    labels, logits = _case(seed=5)
    w = [1.0, 2.0, 1.0, 0.5]
    total = float(SegmentationCrossEntropyDice(class_weights=w)(labels, logits))
    np.testing.assert_allclose(total, numpy_cross_entropy(labels, logits, w) + numpy_dice(labels, logits), rtol=1e-5)
    assert isinstance(make_loss("dice"), SegmentationDice)
    assert make_loss("cross_entropy", class_weights=w).class_weights == w
    with pytest.raises(ValueError, match="unknown segmentation loss"):
        make_loss("focal")


@pytest.mark.parametrize("loss", [SegmentationCrossEntropy(class_weights=[1, 2, 3, 4]), SegmentationDice(),
                                  SegmentationCrossEntropyDice()])
def test_gradients_finite_and_zero_on_ignored_pixels(loss):
    labels, logits = _case(seed=6)
    logits[0, 0, 0] = [80.0, -80.0, 0.0, 0.0]  # saturated softmax stays finite
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(labels, x)
    grad = tape.gradient(value, x).numpy()
    assert np.isfinite(value.numpy()) and np.isfinite(grad).all()
    assert not grad[labels == 255].any()
    assert np.abs(grad[labels != 255]).sum() > 0


@pytest.mark.parametrize("loss", [SegmentationCrossEntropy(ignore_label=9, class_weights=[1, 2]), SegmentationDice(7),
                                  SegmentationCrossEntropyDice(class_weights=[0.5, 1.5])])
def test_config_round_trip(loss):
    config = keras.saving.serialize_keras_object(loss)
    assert config["registered_name"].startswith("suite>")
    again = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    labels, logits = _case(seed=7, classes=2)
    labels[labels == 255] = loss.ignore_label
    np.testing.assert_allclose(float(again(labels, logits)), float(loss(labels, logits)), rtol=1e-6)
