"""The hand-written skip-gram / CBOW step: gradients against autodiff, the damping, a known loss."""
import numpy as np
import pytest
import tensorflow as tf

from apps.word_embeddings.model import WordEmbeddings, _step_sizes


def _batch(rng, vocab=12, groups=5, m=4, k=3):
    mask = (rng.random((groups, m)) < 0.7).astype(np.float32)
    mask[:, 0] = 1.0
    outputs = rng.integers(0, vocab, (groups, 1 + k)).astype(np.int32)
    weight = np.ones((groups, 1 + k), np.float32)
    weight[0, 2] = 0.0  # a negative equal to the positive is skipped
    return {"inputs": tf.constant(rng.integers(0, vocab, (groups, m)).astype(np.int32)),
            "input_mask": tf.constant(mask), "outputs": tf.constant(outputs), "output_weight": tf.constant(weight)}


def _model(cbow, rng, vocab=12, dim=6):
    model = WordEmbeddings(vocab, dim, cbow=cbow, trust=1e9)
    model.vectors.assign(rng.normal(0, 0.5, (vocab, dim)).astype(np.float32))
    model.context_vectors.assign(rng.normal(0, 0.5, (vocab, dim)).astype(np.float32))
    return model


def _dense(ids, rows, shape):
    return tf.scatter_nd(tf.reshape(ids, [-1, 1]), tf.reshape(rows, [-1, shape[1]]), shape).numpy()


@pytest.mark.parametrize("cbow", [False, True])
def test_steps_equal_autodiff_gradients(cbow):
    rng = np.random.default_rng(0)
    model, batch = _model(cbow, rng), _batch(rng)
    with tf.GradientTape() as tape:
        loss, _, _, _ = model.steps(batch, tf.constant(1.0))
    auto = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, [model.vectors.value, model.context_vectors.value])]
    _, _, (ids_in, step_in), (ids_out, step_out) = model.steps(batch, tf.constant(1.0))
    np.testing.assert_allclose(_dense(ids_in, step_in, auto[0].shape), auto[0], atol=1e-5)
    np.testing.assert_allclose(_dense(ids_out, step_out, auto[1].shape), auto[1], atol=1e-5)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    model, batch = _model(False, rng), _batch(rng)
    _, _, (ids_in, step_in), _ = model.steps(batch, tf.constant(1.0))
    grad = _dense(ids_in, step_in, (12, 6))
    row, col, eps = int(batch["inputs"][0, 0]), 2, 1e-2
    base = model.vectors.numpy()
    losses = []
    for sign in (1, -1):
        shifted = base.copy()
        shifted[row, col] += sign * eps
        model.vectors.assign(shifted)
        losses.append(float(model.steps(batch, tf.constant(1.0))[0]))
    assert grad[row, col] == pytest.approx((losses[0] - losses[1]) / (2 * eps), rel=1e-2, abs=1e-3)


def test_loss_with_zero_context_vectors_is_log2_per_scored_pair():
    model = WordEmbeddings(10, 4)  # context vectors start at zero: every logit is 0
    batch = {"inputs": tf.constant([[1, 2, 0]]), "input_mask": tf.constant([[1.0, 1.0, 0.0]]),
             "outputs": tf.constant([[3, 4, 5]]), "output_weight": tf.constant([[1.0, 1.0, 1.0]])}
    loss, pairs, _, _ = model.steps(batch, tf.constant(0.025))
    assert float(pairs) == 2
    assert float(loss) == pytest.approx(2 * 3 * np.log(2), rel=1e-6)  # 2 pairs x (1 positive + 2 negatives)


def test_step_sizes_damp_only_heavily_used_rows():
    ids = tf.constant([[0, 1, 1, 1]])
    curvature = tf.constant([[0.5, 10.0, 10.0, 10.0]])  # row 1: 30 in all
    sizes = _step_sizes(ids, curvature, lr=0.1, trust=1.0, vocabulary_size=3).numpy()
    assert sizes[0, 0] == pytest.approx(0.1)  # 0.1 * 0.5 <= 1: plain SGD
    assert sizes[0, 1:] == pytest.approx([1.0 / 30] * 3)  # shrunk so that lr * curvature = trust


def test_train_step_touches_only_the_rows_of_the_batch():
    rng = np.random.default_rng(2)
    model = _model(False, rng, vocab=50)
    model.compile(optimizer="sgd")
    batch = _batch(rng, vocab=10)  # ids below 10 only
    before = model.vectors.numpy().copy()
    model.train_step(batch)
    after = model.vectors.numpy()
    assert not np.allclose(before[:10], after[:10])
    np.testing.assert_array_equal(before[10:], after[10:])
    assert int(model.optimizer.iterations) == 1


def test_model_saves_and_reloads(tmp_path):
    import keras

    model = WordEmbeddings(7, 3, cbow=True, trust=0.5, seed=3)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    assert (again.cbow, again.trust, again.dim) == (True, 0.5, 3)
    np.testing.assert_array_equal(again.vectors.numpy(), model.vectors.numpy())
