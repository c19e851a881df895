"""Metric-learning losses for face embeddings trained on batches of P identities x K images.

A network f maps a face to an embedding (L2-normalised by the model); d(x1, x2) = ||f(x1) - f(x2)||^2.
Three ways to train it, so they can be compared (`make_metric_loss` picks one by name):

- TripletLoss: L(a, p, n) = max(d(a, p) - d(a, n) + margin, 0) with the triplets mined online in the
  batch ("batch_hard", "semi_hard" or "batch_all"; definitions on the class).
- PairwiseBinaryLoss: the Siamese formulation, a logistic unit on |f(x_i) - f(x_j)| (layers.PairwiseLogits)
  trained on same/different pairs.
- keras.losses.Circle (Sun et al. 2020): cosine similarities, integer labels and unit embeddings as here.

`y_true` is int identity ids [B] (or [B, 1]); `y_pred` embeddings [B, D] (pair logits [B, B] for the binary
loss). Each loss returns a scalar, is registered as "suite>..." for saved models, and is finite with zero
gradients when a batch holds nothing to learn from (one identity only, or only singletons).
ActiveTripletFraction is the training curve that goes with the triplet loss: the share of mined triplets
whose loss is above zero (it falls towards 0 as the easy triplets stop teaching anything).

    loss = TripletLoss(margin=0.2, mining="semi_hard")
    value = loss(identity_ids, embeddings)
    model.compile("adam", loss=loss, metrics=[ActiveTripletFraction(0.2, "semi_hard")])
"""
import keras
from keras import ops

MININGS = ("batch_hard", "semi_hard", "batch_all")
METRIC_LOSSES = (*MININGS, "binary", "circle")


def pairwise_squared_distances(embeddings):
    """d[i, j] = ||e_i - e_j||^2 for embeddings [B, D] -> [B, B], as |e_i|^2 + |e_j|^2 - 2 e_i.e_j.

    Round-off makes that slightly negative for near-equal rows: it is clamped at 0, and the diagonal is
    set to exactly 0 (with a zero gradient). No square root, so no infinite gradient at d = 0.

    >>> keras.ops.convert_to_numpy(pairwise_squared_distances(keras.ops.eye(2))).tolist()
    [[0.0, 2.0], [2.0, 0.0]]
    """
    e = ops.convert_to_tensor(embeddings)
    norms = ops.sum(ops.square(e), axis=-1)
    d = norms[:, None] + norms[None, :] - 2.0 * ops.matmul(e, ops.transpose(e))
    return ops.where(_eye(ops.shape(e)[0]), ops.zeros_like(d), ops.maximum(d, 0.0))


def _eye(n):
    i = ops.arange(n)
    return ops.equal(i[:, None], i[None, :])


def _labels_embeddings(labels, embeddings):
    """Int ids [B] (from [B] or [B, 1], and from the floats Loss.__call__ makes of them) and embeddings
    in float32 at least (half precision distances lose the margin)."""
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    embeddings = ops.convert_to_tensor(embeddings)
    if embeddings.dtype in ("float16", "bfloat16"):
        embeddings = ops.cast(embeddings, "float32")
    return labels, embeddings


def _pair_masks(labels):
    """(positive [B, B]: same identity, not itself; negative [B, B]: another identity)."""
    same = ops.equal(labels[:, None], labels[None, :])
    return ops.logical_and(same, ops.logical_not(_eye(ops.shape(labels)[0]))), ops.logical_not(same)


def _check_mining(mining):
    if mining not in MININGS:
        raise ValueError(f"unknown triplet mining {mining!r}; choose one of {', '.join(MININGS)}")


def _mined_triplets(labels, embeddings, margin, mining):
    """(losses, valid): the hinge max(d(a, p) - d(a, n) + margin, 0) of the triplets `mining` selects, and
    which of them count. Shapes: [B] per anchor (batch_hard), [B, B] per anchor-positive pair
    (semi_hard), [B, B, B] per (a, p, n) (batch_all). Entries that do not count are finite (masked
    minima and maxima fill with finite values, not infinities), so where() leaves them no gradient."""
    labels, embeddings = _labels_embeddings(labels, embeddings)
    d = pairwise_squared_distances(embeddings)
    positive, negative = _pair_masks(labels)
    has_negative = ops.any(negative, axis=1)
    below = -ops.ones_like(d)  # under every distance: a masked maximum that ignores the fill
    above = ops.stop_gradient(ops.max(d)) + 1.0  # over every distance (a scalar)
    if mining == "batch_hard":
        hardest_positive = ops.max(ops.where(positive, d, below), axis=1)
        hardest_negative = ops.min(ops.where(negative, d, above), axis=1)
        valid = ops.logical_and(ops.any(positive, axis=1), has_negative)
        return ops.relu(hardest_positive - hardest_negative + margin), valid
    if mining == "semi_hard":
        # As tfa.losses.TripletSemiHardLoss computed it (tensorflow/addons,
        # tensorflow_addons/losses/triplet.py, triplet_semihard_loss): for the pair (a, p),
        # `negatives_outside` = _masked_minimum of d(a, n) over negatives with d(a, n) > d(a, p)
        # (strictly greater, no upper bound), used where one exists (`mask_final`); otherwise
        # `negatives_inside` = _masked_maximum of d(a, n) over all negatives of a (the easiest of the
        # hard ones). Loss summed over the positive pairs (diagonal excluded) / their number.
        d_ap, d_an = d[:, :, None], d[:, None, :]
        farther = ops.logical_and(negative[:, None, :], ops.greater(d_an, d_ap))  # [a, p, n]
        semi_hard = ops.min(ops.where(farther, d_an, above), axis=2)
        easiest_hard = ops.max(ops.where(negative, d, below), axis=1, keepdims=True)
        chosen = ops.where(ops.any(farther, axis=2), semi_hard, easiest_hard)
        valid = ops.logical_and(positive, has_negative[:, None])
        return ops.relu(d - chosen + margin), valid
    valid = ops.logical_and(positive[:, :, None], negative[:, None, :])
    return ops.relu(d[:, :, None] - d[:, None, :] + margin), valid


def _triplet_statistics(labels, embeddings, margin, mining):
    """(loss, number of active triplets, number of valid triplets) for one batch."""
    _check_mining(mining)
    losses, valid = _mined_triplets(labels, embeddings, margin, mining)
    kept = ops.where(valid, losses, ops.zeros_like(losses))
    n_valid = ops.sum(ops.cast(valid, losses.dtype))
    n_active = ops.sum(ops.cast(ops.greater(kept, 0.0), losses.dtype))
    divisor = n_active if mining == "batch_all" else n_valid
    return ops.sum(kept) / ops.maximum(divisor, 1.0), n_active, n_valid


def triplet_loss(labels, embeddings, margin=0.2, mining="batch_hard"):
    """The scalar TripletLoss computes (functional form; keeps float64 inputs in float64)."""
    return _triplet_statistics(labels, embeddings, margin, mining)[0]


def active_triplet_fraction(labels, embeddings, margin=0.2, mining="batch_hard"):
    """Share of the triplets `mining` selects whose loss is above 0 (anchors for batch_hard,
    anchor-positive pairs for semi_hard, all valid (a, p, n) for batch_all); 0 when none is valid."""
    _, n_active, n_valid = _triplet_statistics(labels, embeddings, margin, mining)
    return n_active / ops.maximum(n_valid, 1.0)


@keras.saving.register_keras_serializable(package="suite")
class TripletLoss(keras.losses.Loss):
    """Triplet loss with online mining in the batch: max(d(a, p) - d(a, n) + margin, 0), d squared L2.

    `mining`:
    - "batch_hard" (Hermans et al. 2017, "In Defense of the Triplet Loss"): per anchor the hardest
      positive (largest d(a, p), p != a, same identity) and the hardest negative (smallest d(a, n),
      other identity); mean over the anchors that have at least one positive and one negative.
    - "semi_hard" (Schroff et al. 2015, FaceNet, as tfa.losses.TripletSemiHardLoss defined it): for each
      anchor-positive pair, the negative with the smallest d(a, n) such that d(a, n) > d(a, p); when none
      is farther than the positive, the largest d(a, n). The loss is above 0 exactly when a semi-hard
      negative (d(a, p) < d(a, n) < d(a, p) + margin) exists, or when every negative is hard. Mean over
      all anchor-positive pairs, the zero ones included.
    - "batch_all" (Hermans et al. 2017): every valid (a, p, n); mean over the active triplets (loss > 0),
      so the many easy triplets do not dilute the few informative ones; 0 when none is active.

    Anchors without a positive (an identity with one image in the batch) or without a negative (a batch
    of one identity) are ignored; a batch with no valid triplet gives 0 with zero gradients, not NaN.
    (tfa differed there: batch-hard averaged every anchor, and semi-hard divided by zero without positive
    pairs.) The default margin 0.2 is FaceNet's, for squared distances between unit vectors (range 0-4).

    >>> labels = [0, 0, 1, 1]
    >>> same_place = keras.ops.ones((4, 3)) / 3 ** 0.5  # every triplet is hard: the loss is the margin
    >>> round(float(TripletLoss(0.2, "batch_hard")(labels, same_place)), 4)
    0.2
    """

    def __init__(self, margin=0.2, mining="batch_hard", name="triplet_loss", reduction="sum", **kwargs):
        # `reduction` is a parameter because get_config saves it: the call already returns the mean
        super().__init__(name=name, reduction=reduction, **kwargs)
        _check_mining(mining)
        self.margin = float(margin)
        self.mining = mining

    def call(self, y_true, y_pred):
        return triplet_loss(y_true, y_pred, self.margin, self.mining)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining}


@keras.saving.register_keras_serializable(package="suite")
class ActiveTripletFraction(keras.metrics.Metric):
    """Mean over batches of `active_triplet_fraction` (the share of mined triplets with a loss above 0);
    batches without a valid triplet are left out. For compile(metrics=[...]) beside a TripletLoss of the
    same margin and mining: y_true identity ids, y_pred embeddings.

    >>> metric = ActiveTripletFraction(0.2, "batch_all")
    >>> metric.update_state([0, 0, 1, 1], keras.ops.ones((4, 3)) / 3 ** 0.5)
    >>> float(metric.result())
    1.0
    """

    def __init__(self, margin=0.2, mining="batch_hard", name="active_triplets", **kwargs):
        super().__init__(name=name, **kwargs)
        _check_mining(mining)
        self.margin = float(margin)
        self.mining = mining
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.batches = self.add_variable((), initializer="zeros", name="batches")

    def update_state(self, y_true, y_pred, sample_weight=None):
        _, n_active, n_valid = _triplet_statistics(y_true, y_pred, self.margin, self.mining)
        counted = ops.cast(ops.greater(n_valid, 0.0), "float32")
        self.total.assign_add(ops.cast(n_active / ops.maximum(n_valid, 1.0), "float32") * counted)
        self.batches.assign_add(counted)

    def result(self):
        return self.total / ops.maximum(self.batches, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.batches.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining}


@keras.saving.register_keras_serializable(package="suite")
class PairwiseBinaryLoss(keras.losses.Loss):
    """Sigmoid cross-entropy of same/different-identity pair logits [B, B] (from layers.PairwiseLogits,
    w . |e_i - e_j| + b: the Siamese verification formulation of DeepFace and Koch et al. 2015).

    Target 1 for two images of the same identity, 0 otherwise, over every off-diagonal pair (i, j) (both
    orders: the mean is unchanged for symmetric logits). A P x K batch holds K - 1 positives per image
    against (P - 1) K negatives, so the two kinds are averaged separately and the loss is
    (mean over positive pairs + mean over negative pairs) / 2; a kind the batch lacks is left out of
    that mean (a batch of one identity: the positive mean alone), and a batch of one image gives 0.

    >>> labels = [0, 0, 1]
    >>> logits = keras.ops.zeros((3, 3))  # p = 0.5 everywhere: log 2 for both kinds
    >>> round(float(PairwiseBinaryLoss()(labels, logits)), 4)
    0.6931
    """

    def __init__(self, name="pairwise_binary_loss", reduction="sum", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        labels, logits = _labels_embeddings(y_true, y_pred)
        positive, negative = _pair_masks(labels)
        target = ops.cast(positive, logits.dtype)
        nll = ops.binary_crossentropy(target, logits, from_logits=True)
        total, kinds = 0.0, 0.0
        for mask in (positive, negative):
            count = ops.sum(ops.cast(mask, logits.dtype))
            total = total + ops.sum(ops.where(mask, nll, ops.zeros_like(nll))) / ops.maximum(count, 1.0)
            kinds = kinds + ops.cast(ops.greater(count, 0.0), logits.dtype)
        return total / ops.maximum(kinds, 1.0)


def make_metric_loss(name, margin=None, gamma=None):
    """The loss called `name`, one of METRIC_LOSSES:

    - "batch_hard", "semi_hard", "batch_all": TripletLoss with that mining (margin default 0.2) on
      embeddings [B, D];
    - "binary": PairwiseBinaryLoss; the model must output pair logits [B, B] (end it in
      layers.PairwiseLogits) instead of embeddings, and takes no margin;
    - "circle": keras.losses.Circle (margin default 0.4, gamma default 80, Keras's); it does not
      normalise: the model must output unit embeddings (a UnitNormalization layer last).

    `gamma` applies to Circle only. All take y_true identity ids [B].
    """
    if name not in METRIC_LOSSES:
        raise ValueError(f"unknown metric-learning loss {name!r}; choose one of {', '.join(METRIC_LOSSES)}")
    if gamma is not None and name != "circle":
        raise ValueError(f"gamma is Circle's scale; the {name!r} loss has none")
    if name == "binary":
        if margin is not None:
            raise ValueError("the binary pair loss has no margin")
        return PairwiseBinaryLoss()
    if name == "circle":
        options = {k: v for k, v in (("margin", margin), ("gamma", gamma)) if v is not None}
        return keras.losses.Circle(**options)
    return TripletLoss(0.2 if margin is None else margin, mining=name)
