"""Metric-learning losses: each triplet mining against a brute-force loop over every (a, p, n), the all-easy
and all-hard batches, batches with nothing to learn (finite, zero gradients), numerical gradients, the
active-triplet metric, the pair-logits head and its binary loss against NumPy, keras Circle, fitting
with each, and configs."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import PairwiseLogits
from layers.losses.metric_learning import (METRIC_LOSSES, MININGS, ActiveTripletFraction, PairwiseBinaryLoss,
                                           TripletLoss, active_triplet_fraction, make_metric_loss,
                                           pairwise_squared_distances, triplet_loss)
from tests.conftest import compile_built
from tests.layers.layer_checks import check_gradients, check_output_shape, check_save_reload


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _batch(seed, identities=3, images=3, dim=4, noise=0.5):
    """P identities x K images in a shuffled order (ids need not be 0..P-1): unit embeddings scattered
    around one random direction per identity, so a batch holds easy, semi-hard and hard triplets."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.repeat(np.arange(identities), images))
    centres = _unit(rng.normal(size=(identities, dim)))
    e = _unit(centres[ids] + rng.normal(size=(len(ids), dim)) * noise)
    return ids * 7 + 3, e.astype("float32")


def numpy_triplet(labels, embeddings, margin, mining):
    """(loss, active fraction) by looping over anchors, positives and negatives, in float64."""
    e = embeddings.astype(np.float64)
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    selected = []
    for a in range(len(labels)):
        positives = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if not positives or not negatives:
            continue
        if mining == "batch_hard":
            selected.append(max(d[a, p] for p in positives) - min(d[a, n] for n in negatives) + margin)
        for p in positives:
            if mining == "semi_hard":
                farther = [d[a, n] for n in negatives if d[a, n] > d[a, p]]
                chosen = min(farther) if farther else max(d[a, n] for n in negatives)
                selected.append(d[a, p] - chosen + margin)
            elif mining == "batch_all":
                selected.extend(d[a, p] - d[a, n] + margin for n in negatives)
    losses = np.maximum(np.array(selected), 0.0)
    if not len(losses):
        return 0.0, 0.0
    active = losses > 0
    if mining == "batch_all":
        loss = losses[active].mean() if active.any() else 0.0
    else:
        loss = losses.mean()
    return loss, active.mean()


def test_pairwise_squared_distances():
    labels, e = _batch(0, dim=5)
    d = pairwise_squared_distances(e).numpy()
    np.testing.assert_allclose(d, ((e[:, None] - e[None]) ** 2).sum(-1), atol=1e-6)
    # large, nearly equal rows: |a|^2 + |b|^2 - 2ab cancels to round-off, which must not go negative
    base = np.random.default_rng(1).normal(size=(1, 16)) * 300
    close = (base + np.random.default_rng(2).normal(size=(6, 16)) * 1e-4).astype("float32")
    d = pairwise_squared_distances(close).numpy()
    assert (d >= 0).all() and (np.diag(d) == 0).all()


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_triplet_loss_matches_brute_force(mining, seed, margin):
    labels, e = _batch(seed)
    expected, fraction = numpy_triplet(labels, e, margin, mining)
    np.testing.assert_allclose(float(TripletLoss(margin, mining)(labels, e)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(TripletLoss(margin, mining)(labels[:, None], e)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(active_triplet_fraction(labels, e, margin, mining)), fraction, atol=1e-6)
    # the functional form keeps float64 and agrees to round-off
    np.testing.assert_allclose(float(triplet_loss(labels, e.astype(np.float64), margin, mining)), expected, rtol=1e-10)


def test_brute_force_cases_reach_every_semi_hard_branch():
    """Across those batches some anchor-positive pairs have no farther negative (the largest d(a, n) is
    used), some a semi-hard one (loss > 0), some only easy ones (loss 0)."""
    branches = set()
    for seed in range(4):
        labels, e = _batch(seed)
        d = ((e[:, None].astype(np.float64) - e[None]) ** 2).sum(-1)
        for a, p in zip(*np.nonzero((labels[:, None] == labels[None]) & ~np.eye(len(labels), dtype=bool))):
            farther = d[a][(labels != labels[a]) & (d[a] > d[a, p])]
            branches.add("none" if not len(farther) else "semi_hard" if farther.min() < d[a, p] + 0.2 else "easy")
    assert branches == {"none", "semi_hard", "easy"}
    fractions = [numpy_triplet(*_batch(seed), 0.2, mining)[1] for seed in range(4) for mining in MININGS]
    assert 0 < min(fractions) and min(fractions) < 1


@pytest.mark.parametrize("mining", MININGS)
def test_unequal_identities_and_singletons(mining):
    """An identity with one image is a negative for the others but never an anchor."""
    rng = np.random.default_rng(5)
    labels = np.array([4, 4, 4, 9, 9, 1, 2, 2, 6])  # 1 and 6 are singletons
    e = _unit(rng.normal(size=(len(labels), 3))).astype("float32")
    expected, fraction = numpy_triplet(labels, e, 0.5, mining)
    np.testing.assert_allclose(float(TripletLoss(0.5, mining)(labels, e)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(active_triplet_fraction(labels, e, 0.5, mining)), fraction, atol=1e-6)


@pytest.mark.parametrize("mining", MININGS)
def test_all_easy_batch(mining):
    """Tight, well-separated clusters: no triplet violates the margin."""
    rng = np.random.default_rng(6)
    labels = np.repeat([0, 1, 2], 3)
    e = _unit(np.eye(4)[labels] + rng.normal(size=(9, 4)) * 0.01).astype("float32")
    assert float(TripletLoss(0.2, mining)(labels, e)) == 0.0
    assert float(active_triplet_fraction(labels, e, 0.2, mining)) == 0.0


@pytest.mark.parametrize("mining", MININGS)
def test_all_hard_batch(mining):
    """Every embedding identical: every triplet sits at d(a, p) = d(a, n) = 0, loss = margin."""
    labels = np.repeat([0, 1, 2], 3)
    e = np.tile(_unit(np.ones((1, 4))), (9, 1)).astype("float32")
    np.testing.assert_allclose(float(TripletLoss(0.3, mining)(labels, e)), 0.3, rtol=1e-6)
    assert float(active_triplet_fraction(labels, e, 0.3, mining)) == 1.0


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("labels", [[5, 5, 5, 5], [0, 1, 2, 3], [7]], ids=["one_identity", "all_singletons", "one_image"])
def test_nothing_to_learn_gives_zero_and_zero_gradients(mining, labels):
    e = tf.constant(_unit(np.random.default_rng(7).normal(size=(len(labels), 3))), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(e)
        value = TripletLoss(0.2, mining)(np.array(labels), e)
    grad = tape.gradient(value, e)
    assert float(value) == 0.0
    assert grad is None or not grad.numpy().any()
    assert float(active_triplet_fraction(np.array(labels), e, 0.2, mining)) == 0.0


@pytest.mark.parametrize("mining", MININGS)
def test_gradients_match_finite_differences(mining):
    """Float64 throughout (the loss's dtype): analytic vs numerical Jacobian on 2 x 2 and 2 x 3 batches."""
    for labels, seed in (([0, 1, 0, 1], 8), ([3, 3, 3, 1, 1, 1], 9)):
        labels = np.array(labels)
        e = tf.constant(_unit(np.random.default_rng(seed).normal(size=(len(labels), 3))), tf.float64)
        loss = TripletLoss(1.0, mining, dtype="float64")
        assert loss(labels, e).dtype == tf.float64
        theoretical, numerical = tf.test.compute_gradient(lambda t: loss(labels, t), [e], delta=1e-6)
        assert np.abs(theoretical[0]).max() > 0.01  # something is active
        np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


def test_active_fraction_metric_averages_batches_and_resets():
    hard = np.tile(_unit(np.ones((1, 4))), (6, 1)).astype("float32")
    easy = np.eye(4)[[0, 0, 1, 1, 2, 2]].astype("float32")
    labels = np.array([0, 0, 1, 1, 2, 2])
    metric = ActiveTripletFraction(0.2, "semi_hard")
    metric.update_state(labels, hard)
    metric.update_state(labels[:, None], easy)
    metric.update_state(np.arange(6), hard)  # no valid triplet: not counted
    assert float(metric.result()) == pytest.approx(0.5)
    batch_labels, e = _batch(10)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(batch_labels, e)
    assert float(metric.result()) == pytest.approx(numpy_triplet(batch_labels, e, 0.2, "semi_hard")[1])


def numpy_pair_loss(labels, logits):
    x = logits.astype(np.float64)
    nll_same, nll_other = np.logaddexp(0, -x), np.logaddexp(0, x)  # -log sigmoid(x), -log(1 - sigmoid(x))
    same = labels[:, None] == labels[None]
    positive, negative = same & ~np.eye(len(labels), dtype=bool), ~same
    means = [nll[mask].mean() for nll, mask in ((nll_same, positive), (nll_other, negative)) if mask.any()]
    return np.mean(means) if means else 0.0


def test_pairwise_binary_loss_matches_numpy():
    rng = np.random.default_rng(11)
    labels = np.array([2, 0, 2, 1, 0, 2, 1])
    logits = (rng.normal(size=(7, 7)) * 3).astype("float32")
    logits[0, 1] = 60.0  # saturated sigmoid stays finite
    expected = numpy_pair_loss(labels, logits)
    np.testing.assert_allclose(float(PairwiseBinaryLoss()(labels, logits)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(PairwiseBinaryLoss()(labels[:, None], logits)), expected, rtol=1e-5)
    changed = logits.copy()
    np.fill_diagonal(changed, 100.0)  # self-pairs do not count
    np.testing.assert_allclose(float(PairwiseBinaryLoss()(labels, changed)), expected, rtol=1e-5)
    # balanced: the 6 positive ordered pairs weigh as much as the 36 negative ones
    x = np.zeros((7, 7), "float32")
    x[labels[:, None] == labels[None]] = 10.0  # confident and right on positives, p = 0.5 on negatives
    np.testing.assert_allclose(float(PairwiseBinaryLoss()(labels, x)), (np.logaddexp(0, -10) + np.log(2)) / 2, rtol=1e-5)
    # one identity: positives only; one image: nothing
    np.testing.assert_allclose(float(PairwiseBinaryLoss()(np.zeros(3), logits[:3, :3])),
                               numpy_pair_loss(np.zeros(3), logits[:3, :3]), rtol=1e-5)
    assert float(PairwiseBinaryLoss()(np.zeros(1), logits[:1, :1])) == 0.0


def test_pairwise_logits_layer_shapes_forward_gradients():
    layer = PairwiseLogits()
    check_output_shape(layer, (5, 4), (5, 5))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(4, 1), (1,)]
    rng = np.random.default_rng(12)
    w, b = rng.normal(size=(4, 1)).astype("float32"), np.array([0.3], "float32")
    layer.set_weights([w, b])
    e = rng.normal(size=(5, 4)).astype("float32")
    expected = np.abs(e[:, None] - e[None]) @ w[:, 0] + b[0]
    got = layer(e).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, got.T, atol=1e-6)
    # |e_i - e_j| has a kink at 0, on the diagonal only: the check perturbs inputs by 1e-6 around
    # distinct rows, where it is smooth
    check_gradients(lambda **kw: PairwiseLogits(**kw), (3, 4))


def test_pairwise_logits_save_reload(tmp_path):
    layer = PairwiseLogits(kernel_initializer="he_normal", use_bias=False)
    check_save_reload(layer, (3, 4), tmp_path)
    assert len(layer.trainable_weights) == 1


def test_circle_expects_labels_and_unit_embeddings():
    """keras.losses.Circle: ids [B] (or [B, 1]) and unit embeddings; pulling each identity's embeddings
    towards their mean direction lowers it."""
    loss = make_metric_loss("circle")
    assert isinstance(loss, keras.losses.Circle) and (loss.margin, loss.gamma, loss.remove_diagonal) == (0.4, 80.0, True)
    labels, e = _batch(13, identities=3, images=4, dim=8)
    before = float(loss(labels, e))
    assert np.isfinite(before) and before > 0
    np.testing.assert_allclose(float(loss(labels[:, None], e)), before, rtol=1e-6)
    centres = {k: _unit(e[labels == k].mean(0)) for k in set(labels)}
    pulled = _unit(np.stack([0.5 * x + 0.5 * centres[k] for k, x in zip(labels, e)])).astype("float32")
    assert float(loss(labels, pulled)) < before
    assert make_metric_loss("circle", margin=0.25, gamma=32).get_config()["gamma"] == 32


def test_factory():
    for name in MININGS:
        loss = make_metric_loss(name)
        assert isinstance(loss, TripletLoss) and (loss.mining, loss.margin) == (name, 0.2)
    assert make_metric_loss("batch_all", margin=0.5).margin == 0.5
    assert isinstance(make_metric_loss("binary"), PairwiseBinaryLoss)
    with pytest.raises(ValueError, match="'contrastive'"):
        make_metric_loss("contrastive")
    with pytest.raises(ValueError, match="no margin"):
        make_metric_loss("binary", margin=0.2)
    with pytest.raises(ValueError, match="gamma"):
        make_metric_loss("semi_hard", gamma=64)
    with pytest.raises(ValueError, match="'hardest'"):
        TripletLoss(mining="hardest")


@pytest.mark.parametrize("obj", [TripletLoss(0.35, "semi_hard"), TripletLoss(mining="batch_all"), PairwiseBinaryLoss(),
                                 ActiveTripletFraction(0.1, "batch_all")], ids=lambda o: type(o).__name__)
def test_config_round_trip(obj):
    config = keras.saving.serialize_keras_object(obj)
    assert config["registered_name"] == f"suite>{type(obj).__name__}"
    again = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(again) is type(obj) and again.get_config() == obj.get_config()


@pytest.mark.parametrize("name", METRIC_LOSSES)
def test_each_loss_trains_in_fit(name):
    """compile(loss=make_metric_loss(name)) with identity ids as y: two epochs of a tiny model run, the
    loss stays finite, and the triplet losses report the active fraction."""
    labels, x = _batch(14, identities=4, images=4, dim=6)
    inputs = keras.Input((6,))
    embeddings = keras.layers.UnitNormalization()(keras.layers.Dense(5)(inputs))
    outputs = PairwiseLogits()(embeddings) if name == "binary" else embeddings
    model = keras.Model(inputs, outputs)
    metrics = [ActiveTripletFraction(0.2, name)] if name in MININGS else []
    compile_built(model, keras.optimizers.Adam(0.01), loss=make_metric_loss(name), metrics=metrics)
    history = model.fit(x, labels, batch_size=16, epochs=2, verbose=0, shuffle=False).history
    assert np.isfinite(history["loss"]).all()
    if metrics:
        assert all(0.0 <= f <= 1.0 for f in history["active_triplets"])
