"""The hand-written skip-gram / CBOW step: gradients against autodiff, the damping, a known loss."""
import numpy as np
import pytest
import tensorflow as tf

from apps.word_embeddings.model import WordEmbeddings, _row_step_sizes


def _bucket(rng, vocab=12, groups=5, m=4, k=3):
    mask = (rng.random((groups, m)) < 0.7).astype(np.float32)
    mask[:, 0] = 1.0
    outputs = rng.integers(0, vocab, (groups, 1 + k)).astype(np.int32)
    weight = np.ones((groups, 1 + k), np.float32)
    weight[0, 2] = 0.0  # a negative equal to the positive is skipped
    return {"inputs": tf.constant(rng.integers(0, vocab, (groups, m)).astype(np.int32)),
            "input_mask": tf.constant(mask), "outputs": tf.constant(outputs), "output_weight": tf.constant(weight)}


def _batch(rng, vocab=12, groups=5):
    """A chunk's batch: two buckets of groups, as windows of two widths."""
    return (_bucket(rng, vocab, groups, m=2), _bucket(rng, vocab, groups + 1, m=4))


def _model(cbow, rng, vocab=12, dim=6):
    model = WordEmbeddings(vocab, dim, cbow=cbow, trust=1e9)
    model.vectors.assign(rng.normal(0, 0.5, (vocab, dim)).astype(np.float32))
    model.context_vectors.assign(rng.normal(0, 0.5, (vocab, dim)).astype(np.float32))
    return model


def _dense(updates, shape):
    return sum(tf.scatter_nd(tf.reshape(ids, [-1, 1]), tf.reshape(rows, [-1, shape[1]]), shape).numpy()
               for ids, rows in updates)


@pytest.mark.parametrize("cbow", [False, True])
def test_steps_equal_autodiff_gradients(cbow):
    rng = np.random.default_rng(0)
    model, batch = _model(cbow, rng), _batch(rng)
    if cbow:  # full windows of 2 and 4 words: word2vec's CBOW step is count x the gradient of the mean
        batch = tuple({**b, "input_mask": tf.ones_like(b["input_mask"])} for b in batch)
    with tf.GradientTape(persistent=True) as tape:
        loss, _, _, _ = model.steps(batch, tf.constant(1.0))
        per_bucket = [model.steps((b,), tf.constant(1.0))[0] for b in batch]
    auto_out = tf.convert_to_tensor(tape.gradient(loss, model.context_vectors.value)).numpy()
    scale = [b["inputs"].shape[1] if cbow else 1 for b in batch]
    auto_in = sum(c * tf.convert_to_tensor(tape.gradient(l, model.vectors.value)).numpy() for c, l in zip(scale, per_bucket))
    _, _, steps_in, steps_out = model.steps(batch, tf.constant(1.0))
    np.testing.assert_allclose(_dense(steps_in, auto_in.shape), auto_in, atol=1e-5)
    np.testing.assert_allclose(_dense(steps_out, auto_out.shape), auto_out, atol=1e-5)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    model, batch = _model(False, rng), _batch(rng)
    _, _, steps_in, _ = model.steps(batch, tf.constant(1.0))
    grad = _dense(steps_in, (12, 6))
    row, col, eps = int(batch[0]["inputs"][0, 0]), 2, 1e-2
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
    batch = ({"inputs": tf.constant([[1, 2, 0]]), "input_mask": tf.constant([[1.0, 1.0, 0.0]]),
              "outputs": tf.constant([[3, 4, 5]]), "output_weight": tf.constant([[1.0, 1.0, 1.0]])},)
    loss, pairs, _, _ = model.steps(batch, tf.constant(0.025))
    assert float(pairs) == 2
    assert float(loss) == pytest.approx(2 * 3 * np.log(2), rel=1e-6)  # 2 pairs x (1 positive + 2 negatives)


def test_step_sizes_damp_only_heavily_used_rows():
    sizes = _row_step_sizes(tf.constant([0.5, 30.0, 0.0]), lr=0.1, trust=1.0).numpy()
    assert sizes == pytest.approx([0.1, 1.0 / 30, 0.1])  # 0.1 * 30 > 1: shrunk so that lr * curvature = trust


def test_curvature_of_a_row_is_summed_over_every_bucket():
    model = WordEmbeddings(4, 2, trust=1.0)
    model.vectors.assign(tf.ones([4, 2]))
    model.context_vectors.assign(tf.ones([4, 2]))  # logit 2 everywhere
    bucket = {"inputs": tf.constant([[0]]), "input_mask": tf.constant([[1.0]]), "outputs": tf.constant([[1, 2]]),
              "output_weight": tf.constant([[1.0, 1.0]])}
    lr = tf.constant(1.0)
    p = 1 / (1 + np.exp(-2.0))
    curvature = 2 * p * (1 - p) * 2  # per use: sigmoid'(2) * |(1, 1)|^2 for each of 2 outputs = 0.42
    one, two, three = (model.steps((bucket,) * n, lr)[2][0][1].numpy() for n in (1, 2, 3))
    np.testing.assert_allclose(two, one)  # 2 uses: lr * 0.84 <= 1, plain SGD
    np.testing.assert_allclose(three, one / (3 * curvature), rtol=1e-5)  # 3 uses: 1.26 > 1, damped


def test_train_step_touches_only_the_rows_of_the_batch():
    rng = np.random.default_rng(2)
    model = _model(False, rng, vocab=50)
    model.compile(optimizer="sgd")
    batch = _batch(rng, vocab=10)  # ids below 10 only
    before = model.vectors.numpy().copy()
    model.sgd_step(batch)
    after = model.vectors.numpy()
    assert not np.allclose(before[:10], after[:10])
    np.testing.assert_array_equal(before[10:], after[10:])
    assert int(model.optimizer.iterations) == 1


def test_train_step_runs_the_chunks_of_a_batch_one_after_the_other():
    rng = np.random.default_rng(3)
    chunks = [_batch(rng), _batch(rng, groups=3)]
    one_by_one, together = _model(False, np.random.default_rng(4)), _model(False, np.random.default_rng(4))
    for model in (one_by_one, together):
        model.compile(optimizer=__import__("keras").optimizers.SGD(0.1))
    for chunk in chunks:
        one_by_one.sgd_step(chunk)
    ragged = tuple({k: tf.RaggedTensor.from_row_lengths(tf.concat([c[b][k] for c in chunks], 0),
                                                        [c[b]["outputs"].shape[0] for c in chunks]) for k in chunks[0][b]}
                   for b in range(2))
    logs = together.train_step(ragged)
    np.testing.assert_allclose(together.vectors.numpy(), one_by_one.vectors.numpy(), atol=1e-6)
    np.testing.assert_allclose(together.context_vectors.numpy(), one_by_one.context_vectors.numpy(), atol=1e-6)
    assert int(together.optimizer.iterations) == 2 and float(logs["pairs"]) > 0


def test_model_saves_and_reloads(tmp_path):
    import keras

    model = WordEmbeddings(7, 3, cbow=True, trust=0.5, seed=3)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    assert (again.cbow, again.trust, again.dim) == (True, 0.5, 3)
    np.testing.assert_array_equal(again.vectors.numpy(), model.vectors.numpy())
