"""Face verification and identification scores, the LFW way, in NumPy (no TensorFlow).

Faces are compared by the squared Euclidean distance between L2-normalised embeddings (0..4), or, for a
network trained with the binary pair head, by that head's negated logit; a pair is called "same person" when
its distance is <= the threshold.

- Pairs: people are dealt into identity-disjoint folds (nobody is in two folds, so a threshold is never
  tested on the people it was chosen on); a fold holds all its genuine pairs and a seeded sample of its
  impostor pairs. An LFW pairs.txt gives (i, j, same, fold) directly, and the same report runs on it.
- Verification: accuracy per fold with the threshold chosen on the other folds (LFW's protocol), its mean
  and spread; over all pairs the ROC, AUC, equal error rate and TAR at FAR = 1e-2 and 1e-3 (None when
  there are too few impostor pairs to measure that FAR: 1e-3 needs 1000).
- Calibration: p(same | d) = sigmoid(a d + b) by logistic regression, for predict and the export; the app fits
  it centred on the threshold (p = 0.5 there), both chosen with genuine and impostor pairs weighed equally.
- Identification: one seeded image per person enrolled as the gallery, the others probed; top-1, top-5.

    pairs = make_pairs(labels, folds=10, seed=0)
    d = pair_distances(embeddings, pairs.i, pairs.j)
    report = verification_report(d, pairs.same, pairs.fold)  # report["accuracy_mean"], report["threshold"]
    a, b = fit_calibration(d, pairs.same, center=report["threshold"])  # calibrated_probability(d, a, b)
    identification_report(embeddings, labels, seed=0)["top1_accuracy"]
"""
import collections
import math

import numpy as np

from apps.core.errors import UserError

FAR_TARGETS = (1e-2, 1e-3)
# Default impostor pairs per fold: as many as the genuine pairs (LFW's balance), and at least 1000 so that
# one fold alone can measure FAR = 1e-3 and the pooled ROC over 10 folds puts ~10 false accepts behind it.
MIN_IMPOSTORS = 1000
# How the deployed threshold is chosen (calibration.json says so): genuine and impostor pairs count equally, so
# that the threshold sits where the calibration's p(same | d), fitted at a 50/50 prior, is 0.5.
THRESHOLD_RULE = "balanced accuracy"
_ENUMERATE = 2_000_000  # folds with at most this many image pairs list them all; bigger ones are sampled

Pairs = collections.namedtuple("Pairs", "i j same fold")
Pairs.__doc__ = "Image index pairs (i < j), whether they show the same person, and the fold of each pair."


def l2_normalise(x, eps=1e-12):
    """Rows scaled to unit length (float64); a zero row stays zero."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def pair_distances(embeddings, i, j, chunk=65536, head=None):
    """Squared Euclidean distances between the L2-normalised embeddings of images i[k] and j[k] (0..4); with
    `head` = (w, b), a binary run's pair head (model.pair_head_weights), its logit negated instead: -(w . |e_i - e_j| + b),
    the log-odds of "different people" as the head learnt them (any real number; lower is likelier the same)."""
    unit = l2_normalise(embeddings)
    i, j = np.asarray(i), np.asarray(j)

    def part(a, b):
        if head is None:
            return np.sum((a - b) ** 2, axis=-1)
        return -(np.abs(a - b) @ np.asarray(head[0], np.float64) + float(head[1]))

    return np.concatenate([part(unit[i[s:s + chunk]], unit[j[s:s + chunk]])
                           for s in range(0, len(i), chunk)] or [np.zeros(0)])


def distance_matrix(x, y, head=None):
    """Distances (len(x), len(y)) of every embedding in `x` to every one in `y`, as pair_distances compares them
    (`head` likewise): probes against a gallery."""
    n, m = len(x), len(y)
    return pair_distances(np.concatenate([x, y]), np.repeat(np.arange(n), m), n + np.tile(np.arange(m), n),
                          head=head).reshape(n, m)


def default_folds(people):
    """Folds for `people` test people when none are asked for: LFW's 10 when every fold still holds 5 people or
    more, fewer (2 at least) otherwise. A fold's impostor pairs are drawn within it, so a fold of 2 people
    measures one pair of people (two look-alikes make it a coin toss); 5 give it 10 pairs of people."""
    return int(min(10, max(2, people // 5)))


def make_pairs(labels, folds=10, impostors_per_fold=None, seed=0):
    """Pairs(i, j, same, fold) for per-image `labels`: people dealt into `folds` identity-disjoint folds by a
    seeded permutation (fold k holds people k::folds of it); in each fold every genuine pair and a seeded
    sample of `impostors_per_fold` distinct impostor pairs (None: max(genuine pairs, MIN_IMPOSTORS); all of
    them if the fold has fewer), uniform over the fold's impostor image pairs."""
    people, ids = np.unique(np.asarray(labels), return_inverse=True)
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if len(people) < 2 * folds:
        raise UserError(f"{len(people)} people cannot fill {folds} folds with two people each (an impostor pair "
                        f"needs two); use at most {len(people) // 2} folds or more people")
    if impostors_per_fold is not None and impostors_per_fold < 0:
        raise ValueError(f"impostors_per_fold must be >= 0, got {impostors_per_fold}")
    rng = np.random.default_rng(seed)
    fold_of_person = np.empty(len(people), np.int64)
    order = rng.permutation(len(people))
    for k in range(folds):
        fold_of_person[order[k::folds]] = k
    parts = []
    for k in range(folds):
        members = np.flatnonzero(fold_of_person[ids] == k)
        gi, gj = _genuine_pairs(ids, members)
        wanted = max(len(gi), MIN_IMPOSTORS) if impostors_per_fold is None else impostors_per_fold
        ii, ij = _impostor_sample(ids, members, wanted, rng)
        same = np.r_[np.ones(len(gi), bool), np.zeros(len(ii), bool)]
        parts.append((np.r_[gi, ii], np.r_[gj, ij], same, np.full(len(same), k)))
    return Pairs(*(np.concatenate(column) for column in zip(*parts)))


def _genuine_pairs(ids, members):
    """Every (i < j) pair of images of the same person among `members` (sorted image indices)."""
    firsts, seconds = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for person in np.unique(ids[members]):
        images = members[ids[members] == person]
        a, b = np.triu_indices(len(images), 1)
        firsts.append(images[a])
        seconds.append(images[b])
    return np.concatenate(firsts), np.concatenate(seconds)


def _impostor_sample(ids, members, wanted, rng):
    """`wanted` distinct (i < j) pairs of different people among `members`, uniformly at random (all of them
    if there are no more); listed and chosen from when the fold is small, else drawn and deduplicated."""
    n = len(members)
    counts = np.unique(ids[members], return_counts=True)[1]
    available = n * (n - 1) // 2 - int(np.sum(counts * (counts - 1) // 2))
    if n * (n - 1) // 2 <= _ENUMERATE or 2 * wanted >= available:
        a, b = np.triu_indices(n, 1)
        keep = ids[members[a]] != ids[members[b]]
        a, b = a[keep], b[keep]
        if wanted < available:
            chosen = np.sort(rng.choice(available, size=wanted, replace=False))
            a, b = a[chosen], b[chosen]
        return members[a], members[b]
    codes = np.zeros(0, np.int64)  # lo * n + hi, in the order first drawn
    while len(codes) < wanted:
        a, b = rng.integers(0, n, (2, 2 * (wanted - len(codes)) + 16))
        keep = ids[members[a]] != ids[members[b]]
        codes = np.r_[codes, np.minimum(a, b)[keep] * n + np.maximum(a, b)[keep]]
        codes = codes[np.sort(np.unique(codes, return_index=True)[1])]
    codes = np.sort(codes[:wanted])
    return members[codes // n], members[codes % n]


def best_threshold(distances, same, balanced=False):
    """The threshold with the highest accuracy on these pairs ("same" when d <= threshold), in O(n log n):
    a midpoint between two consecutive distinct distances (never between tied ones). Of equally accurate
    thresholds the smallest is taken (fewest false accepts), as a grid search from 0 upwards would.
    With `balanced`, the highest balanced accuracy (each genuine and each impostor pair weighted by 1 / its
    kind's count): the threshold for same and different equally likely, whatever mix of pairs was sampled,
    as the calibration's prior 0.5 assumes (THRESHOLD_RULE)."""
    d, same = _checked(distances, same)
    order = np.argsort(d, kind="stable")
    d, same = d[order], same[order]
    n = len(d)
    genuine, impostors = int(same.sum()), int((~same).sum())
    # Weights scaled to integers (genuine x impostors): equally good thresholds tie exactly.
    wg, wi = (impostors or 1, genuine or 1) if balanced else (1, 1)
    # Accepting the k nearest pairs (k = 0..n) is right on the genuine ones among them and the impostors after.
    correct = np.r_[0, np.cumsum(same)] * wg + (impostors - np.r_[0, np.cumsum(~same)]) * wi
    cut = np.ones(n + 1, bool)
    cut[1:n] = d[1:] > d[:-1]
    k = int(np.flatnonzero(cut & (correct == correct[cut].max()))[0])
    if k == 0:
        return float(np.nextafter(d[0], -np.inf))
    if k == n:
        return float(d[-1])
    middle = (d[k - 1] + d[k]) / 2
    return float(middle if middle < d[k] else d[k - 1])


def accuracy_at(distances, same, threshold):
    """Share of pairs decided right when "same" means distance <= threshold."""
    d, same = _checked(distances, same)
    return float(np.mean((d <= threshold) == same))


def balanced_accuracy_at(distances, same, threshold):
    """The mean of the genuine pairs' and the impostor pairs' share decided right at `threshold`: the
    accuracy if same and different were equally likely, whatever the mix of pairs."""
    d, same = _checked(distances, same, both=True)
    accepted = d <= threshold
    return float((np.mean(accepted[same]) + np.mean(~accepted[~same])) / 2)


def roc_curve(distances, same):
    """(far, tar, threshold) at every distinct distance, from (0, 0) (a threshold below every distance) to
    (1, 1): FAR = impostor pairs accepted / impostor pairs, TAR = genuine pairs accepted / genuine pairs."""
    d, same = _checked(distances, same, both=True)
    order = np.argsort(d, kind="stable")
    d, same = d[order], same[order]
    last = np.r_[d[1:] != d[:-1], True]  # the last pair at each distinct distance
    tar = np.r_[0.0, np.cumsum(same)[last] / same.sum()]
    far = np.r_[0.0, np.cumsum(~same)[last] / (~same).sum()]
    return far, tar, np.r_[np.nextafter(d[0], -np.inf), d[last]]


def equal_error_rate(far, tar, thresholds):
    """(rate, threshold) where FAR = FRR (= 1 - TAR), interpolated linearly between two ROC points."""
    gap = far + tar - 1.0  # FAR - FRR: -1 at (0, 0), +1 at (1, 1), never decreasing
    k = int(np.argmax(gap >= 0))
    s = -gap[k - 1] / (gap[k] - gap[k - 1])
    return (float(far[k - 1] + s * (far[k] - far[k - 1])),
            float(thresholds[k - 1] + s * (thresholds[k] - thresholds[k - 1])))


def tar_at_far(distances, same, far):
    """TAR at the largest threshold whose FAR <= `far`, with the impostor pairs it rests on; tar and threshold
    are None (and a note says why) when there are fewer than 1/far impostor pairs."""
    if not 0 < far < 1:
        raise ValueError(f"a false accept rate is between 0 and 1, got {far}")
    d, same = _checked(distances, same, both=True)
    impostors = np.sort(d[~same])
    n = len(impostors)
    entry = {"far": far, "tar": None, "threshold": None, "impostor_pairs": n, "false_accepts": None, "note": None}
    needed = math.ceil(1 / far - 1e-9)
    if n < needed:
        entry["note"] = f"{n} impostor pairs cannot measure FAR {far:g}: it needs at least {needed}"
        return entry
    limit = impostors[math.floor(far * n + 1e-9)]  # the nearest impostor that must be rejected
    below = d[d < limit]
    threshold = np.nextafter(limit, -np.inf) if not below.size else (below.max() + limit) / 2
    threshold = threshold if threshold < limit else below.max()
    entry.update(tar=float(np.mean(d[same] < limit)), threshold=float(threshold),
                 false_accepts=int(np.sum(impostors < limit)))
    return entry


def verification_report(distances, same, fold, far_targets=FAR_TARGETS):
    """Every verification score of pair `distances` (with `same` and each pair's `fold`) as a dict:

    folds, genuine_pairs, impostor_pairs; fold_accuracy and fold_threshold (each fold scored with the
    threshold best on the other folds), accuracy_mean, accuracy_std (population std, as LFW reports; with
    one fold, e.g. a calibration set, the lists are empty and these None); threshold (best on all pairs: the
    one to deploy) and accuracy_at_threshold (on those same pairs, so optimistic); "best" is by balanced
    accuracy (threshold_rule; the same as accuracy on balanced pairs, LFW's) while the accuracies are of
    the pairs as they come, with balanced_accuracy_at_threshold beside them; auc; eer and
    eer_threshold; tar_at_far {"0.01": {far, tar, threshold, impostor_pairs, false_accepts, note},
    "0.001": ...}; roc {far, tar, threshold} arrays at the ROC's corners (points inside a straight run
    left out). Everything but roc is JSON-ready."""
    d, same = _checked(distances, same, both=True)
    fold = np.asarray(fold)
    if fold.shape != d.shape:
        raise ValueError(f"{len(fold)} folds given for {len(d)} pairs")
    fold_ids = np.unique(fold)
    scored = fold_ids if len(fold_ids) > 1 else []  # one fold has no "other folds" to choose a threshold on
    thresholds = [best_threshold(d[fold != k], same[fold != k], balanced=True) for k in scored]
    accuracies = [accuracy_at(d[fold == k], same[fold == k], t) for k, t in zip(scored, thresholds)]
    threshold = best_threshold(d, same, balanced=True)
    far, tar, roc_thresholds = roc_curve(d, same)
    eer, eer_threshold = equal_error_rate(far, tar, roc_thresholds)
    corner = np.ones(len(far), bool)
    for rate in (far, tar):  # a point inside a vertical or horizontal run adds nothing to the curve
        corner[1:-1] &= ~((rate[:-2] == rate[1:-1]) & (rate[1:-1] == rate[2:]))
    return {"folds": len(fold_ids), "genuine_pairs": int(same.sum()), "impostor_pairs": int((~same).sum()),
            "fold_accuracy": accuracies, "fold_threshold": thresholds,
            "accuracy_mean": float(np.mean(accuracies)) if accuracies else None,
            "accuracy_std": float(np.std(accuracies)) if accuracies else None,
            "threshold": threshold, "threshold_rule": THRESHOLD_RULE, "accuracy_at_threshold": accuracy_at(d, same, threshold),
            "balanced_accuracy_at_threshold": balanced_accuracy_at(d, same, threshold),
            "auc": float(np.trapezoid(tar, far)), "eer": eer, "eer_threshold": eer_threshold,
            "tar_at_far": {f"{f:g}": tar_at_far(d, same, f) for f in far_targets},
            "roc": {"far": far[corner], "tar": tar[corner], "threshold": roc_thresholds[corner]}}


def _checked(distances, same, both=False):
    d = np.asarray(distances, np.float64).ravel()
    same = np.asarray(same, bool).ravel()
    if d.shape != same.shape or not d.size:
        raise ValueError(f"need as many same/different flags as distances (>0); got {same.size} and {d.size}")
    if not np.isfinite(d).all():
        raise ValueError("distances must be finite")
    if both and (same.all() or not same.any()):
        raise ValueError(f"need genuine and impostor pairs; got {int(same.sum())} genuine of {d.size}")
    return d, same


def fit_calibration(distances, same, prior=0.5, center=None, l2=1e-4, iterations=100):
    """(a, b) of p(same | d) = sigmoid(a d + b) by logistic regression (Newton's method with a backtracking
    step), with an L2 penalty `l2` on a so that separable pairs give a steep but finite slope (a < 0: the
    nearer, the likelier). `prior` weights the pairs so that the genuine ones count for that share (0.5:
    same and different equally likely before seeing the faces, whatever mix of pairs was sampled); None
    keeps the sample's own mix. `center` (the threshold): only the slope is fitted and p = 0.5 there
    (b = -a * center), so that "d <= center" and "p >= 0.5" never disagree; a slope that would come out
    positive (farther pairs likelier the same: an untrained network) is 0 then, p = 0.5 everywhere."""
    if prior is not None and not 0 < prior < 1:
        raise ValueError(f"prior is a share of genuine pairs, between 0 and 1; got {prior}")
    d, y = _checked(distances, same, both=True)
    y = y.astype(np.float64)
    if prior is None:
        weight = np.ones_like(y)
    else:  # mean 1, so that the penalty weighs as much against the loss as without weights
        weight = len(y) * np.where(y > 0, prior / y.sum(), (1 - prior) / (1 - y).sum())
    if center is None:
        x, penalty = np.stack([d, np.ones_like(d)], axis=1), np.array([l2, 0.0])
        w = np.array([0.0, _logit(np.mean(weight * y) / np.mean(weight))])
    else:
        x, penalty = (d - center)[:, None], np.array([l2])
        w = np.zeros(1)

    def loss(w):
        z = x @ w
        return np.mean(weight * (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * w[0] ** 2

    for _ in range(iterations):
        p = _sigmoid(x @ w)
        gradient = x.T @ (weight * (p - y)) / len(y) + penalty * w
        hessian = (x.T * (weight * p * (1 - p))) @ x / len(y) + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hessian, gradient)
        size, current = 1.0, loss(w)
        while loss(w - size * step) > current and size > 1e-8:
            size /= 2
        w = w - size * step
        if np.max(np.abs(size * step)) < 1e-10:
            break
    if center is None:
        return float(w[0]), float(w[1])
    a = min(float(w[0]), 0.0)
    return a, float(-a * center) + 0.0  # not -0.0


def calibrated_probability(distances, a, b):
    """p(same person | distance) = sigmoid(a * d + b); an array for an array, a float for a number."""
    p = _sigmoid(a * np.asarray(distances, np.float64) + b)
    return float(p) if np.ndim(p) == 0 else p


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def _logit(p):
    return math.log(p / (1 - p))


def identification_report(embeddings, labels, seed=0, chunk=1024, head=None):
    """Closed-set identification: one seeded image of each person is enrolled as the gallery, every other
    image is a probe ranked against the gallery by distance. A probe is right at top-k when fewer than k
    other people are as near as its own (ties count against it, so collapsed embeddings score 0). People
    with one image only are enrolled (as distractors) but have nothing to probe.
    Returns gallery_identities, probes, single_image_identities, top1_correct, top5_correct, top1_accuracy,
    top5_accuracy (None without probes) and a note (None, or why a figure says little). `head`: as pair_distances."""
    unit = l2_normalise(embeddings)
    ids = np.unique(np.asarray(labels), return_inverse=True)[1]
    order = np.argsort(ids, kind="stable")
    counts = np.bincount(ids)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    gallery = order[starts + np.floor(np.random.default_rng(seed).random(len(counts)) * counts).astype(np.int64)]
    probes = np.setdiff1d(np.arange(len(ids)), gallery)
    correct = np.zeros(2, np.int64)
    for s in range(0, len(probes), chunk):
        batch = probes[s:s + chunk]
        if head is None:
            dist = np.sum(unit[batch] ** 2, 1)[:, None] - 2 * unit[batch] @ unit[gallery].T + np.sum(unit[gallery] ** 2, 1)
        else:
            dist = distance_matrix(unit[batch], unit[gallery], head)
        own = dist[np.arange(len(batch)), ids[batch]]  # gallery entry c is person c
        rank = np.sum(dist <= own[:, None], axis=1) - 1  # other people at least as near
        correct += [np.sum(rank < 1), np.sum(rank < 5)]
    notes = []
    if not len(probes):
        notes.append("no person has a second image to probe with")
    if len(counts) <= 5:
        notes.append(f"{len(counts)} people in the gallery: top-5 is right by construction")
    return {"gallery_identities": len(counts), "probes": len(probes),
            "single_image_identities": int(np.sum(counts == 1)),
            "top1_correct": int(correct[0]), "top5_correct": int(correct[1]),
            "top1_accuracy": float(correct[0] / len(probes)) if len(probes) else None,
            "top5_accuracy": float(correct[1] / len(probes)) if len(probes) else None,
            "note": "; ".join(notes) or None}


def hardest_pairs(distances, same, count=4):
    """Indices of the `count` farthest genuine pairs and the `count` nearest impostor pairs (a pair sheet's rows)."""
    d, same = _checked(distances, same)
    genuine, impostor = np.flatnonzero(same), np.flatnonzero(~same)
    return np.r_[genuine[np.argsort(-d[genuine], kind="stable")[:count]],
                 impostor[np.argsort(d[impostor], kind="stable")[:count]]]
