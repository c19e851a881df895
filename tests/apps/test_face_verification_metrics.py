"""Face-verification scores: hand-checked small cases, and agreement with brute-force counts (pairs of pairs
for the AUC, every threshold for accuracy and TAR@FAR) on random distances with ties."""
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apps.core.errors import UserError
from apps.face_verification.pictures import save_distance_histogram, save_embedding_map, save_pair_sheet, save_roc
from apps.face_verification.verification import (
    MIN_IMPOSTORS, THRESHOLD_RULE, accuracy_at, balanced_accuracy_at, best_threshold, calibrated_probability,
    default_folds, fit_calibration, hardest_pairs, identification_report, make_pairs, pair_distances, tar_at_far,
    verification_report)


def _random_pairs(seed, n=400, folds=5):
    """Genuine pairs nearer on average, distances rounded so that many tie (also across the two kinds)."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    d = np.round(np.where(same, rng.normal(0.8, 0.35, n), rng.normal(1.4, 0.35, n)).clip(0, 4), 1)
    return d, same, rng.integers(0, folds, n)


def brute_auc(d, same):
    """Mann-Whitney: P(d_genuine < d_impostor) + 0.5 P(tie), over every (genuine, impostor) couple."""
    wins = [1.0 if g < i else 0.5 if g == i else 0.0 for g, i in itertools.product(d[same], d[~same])]
    return np.mean(wins)


def brute_best_accuracy(d, same):
    candidates = np.r_[-1.0, np.unique(d)]  # "same" when d <= t: every distinct decision is one of these
    return max(np.mean((d <= t) == same) for t in candidates)


def imbalanced_pairs(seed=0):
    """100 genuine pairs, 2000 impostors (as calibrate on a user's folder or evaluate with many people gives)."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0.6, 0.15, 100), rng.normal(1.2, 0.15, 2000)], np.arange(2100) < 100


# --- pairs -----------------------------------------------------------------------------------------------

def test_folds_are_identity_disjoint_and_hold_every_genuine_pair():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, 300)
    pairs = make_pairs(labels, folds=10, seed=3)
    assert np.all(pairs.i < pairs.j)
    np.testing.assert_array_equal(pairs.same, labels[pairs.i] == labels[pairs.j])
    people_in = [set(labels[pairs.i[pairs.fold == k]]) | set(labels[pairs.j[pairs.fold == k]]) for k in range(10)]
    for a, b in itertools.combinations(people_in, 2):
        assert not a & b
    genuine = {(i, j) for i, j in itertools.combinations(range(len(labels)), 2) if labels[i] == labels[j]}
    assert set(zip(pairs.i[pairs.same].tolist(), pairs.j[pairs.same].tolist())) == genuine
    assert sum(map(len, people_in)) == 40  # 40 people, each in one fold (every one has a genuine or impostor pair)


def test_impostor_sample_is_seeded_distinct_and_sized():
    labels = np.repeat(np.arange(40), 20)  # 4 people, 80 images per fold: 2400 impostor pairs each
    first, again, other = (make_pairs(labels, folds=10, impostors_per_fold=300, seed=s) for s in (7, 7, 8))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.i, other.i)
    for k in range(10):
        imp = (first.fold == k) & ~first.same
        assert imp.sum() == 300
        assert len(set(zip(first.i[imp].tolist(), first.j[imp].tolist()))) == 300
        assert np.all(labels[first.i[imp]] != labels[first.j[imp]])
    # default: max(genuine, MIN_IMPOSTORS) per fold, capped by what exists (2400 here)
    default = make_pairs(labels, folds=10, seed=7)
    assert np.all(np.bincount(default.fold[~default.same]) == min(max(4 * 190, MIN_IMPOSTORS), 2400))
    few = make_pairs(labels, folds=10, impostors_per_fold=10**6, seed=7)  # asks for more than exist: all of them
    assert np.all(np.bincount(few.fold[~few.same]) == 2400)


def test_large_folds_are_sampled_by_drawing():
    labels = np.repeat(np.arange(8), 600)  # 2400 images per fold: more image pairs than are listed
    pairs = make_pairs(labels, folds=2, impostors_per_fold=5000, seed=0)
    imp = ~pairs.same
    assert np.all(np.bincount(pairs.fold[imp]) == 5000)
    codes = pairs.i[imp].astype(np.int64) * len(labels) + pairs.j[imp]
    assert len(np.unique(codes)) == 10000 and np.all(labels[pairs.i[imp]] != labels[pairs.j[imp]])


def test_too_few_people_for_the_folds_is_one_clear_error():
    with pytest.raises(UserError, match="at most 2 folds"):
        make_pairs([0, 0, 1, 1, 2, 2, 3, 4], folds=3)


def test_pair_distances_are_squared_distances_of_unit_vectors():
    e = np.array([[3.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    np.testing.assert_allclose(pair_distances(e, [0, 0, 1], [1, 2, 1]), [2.0, 4.0, 0.0])


def test_pair_distances_with_a_pair_head_are_its_negated_logits():
    e = np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])  # unit: (0.6, 0.8), (0, 1), (1, 0)
    w, b = np.array([-2.0, 1.0]), 0.5
    # |(0.6, 0.8) - (0, 1)| = (0.6, 0.2): -(-1.2 + 0.2 + 0.5) = 0.5; |(0, 1) - (1, 0)| = (1, 1): -(-1 + 0.5) = 0.5
    np.testing.assert_allclose(pair_distances(e, [0, 1, 2], [1, 2, 2], head=(w, b)), [0.5, 0.5, -0.5])


# --- verification -----------------------------------------------------------------------------------------

def test_best_threshold_on_four_points_takes_the_smaller_of_two_equally_good():
    # accepting the nearest 1 or the nearest 3 both get 3 of 4 right: the midpoint after the first wins
    assert best_threshold([0.2, 0.6, 0.7, 1.2], [True, False, True, False]) == pytest.approx(0.4)
    assert best_threshold([0.1, 0.3, 0.9, 1.0], [True, True, False, False]) == pytest.approx(0.6)
    # never between tied distances: 0.5 is one decision for both pairs, so accept both (2 of 3 right)
    t = best_threshold([0.5, 0.5, 0.2], [False, True, True])
    assert accuracy_at([0.5, 0.5, 0.2], [False, True, True], t) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_threshold_matches_every_threshold_tried(seed):
    d, same, _ = _random_pairs(seed)
    assert accuracy_at(d, same, best_threshold(d, same)) == pytest.approx(brute_best_accuracy(d, same))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_threshold_matches_every_threshold_tried(seed):
    d, same, _ = _random_pairs(seed)
    best = max(balanced_accuracy_at(d, same, t) for t in np.r_[-1.0, np.unique(d)])
    assert balanced_accuracy_at(d, same, best_threshold(d, same, balanced=True)) == pytest.approx(best)
    # of equally good ones the smallest: accepting the nearest 1 or the nearest 3 both give balanced accuracy 3/4
    d, same = np.array([0.1, 0.5, 0.6, 0.9]), np.array([True, False, True, False])
    assert balanced_accuracy_at(d, same, 0.3) == balanced_accuracy_at(d, same, 0.75) == pytest.approx(0.75)
    assert best_threshold(d, same, balanced=True) == pytest.approx(0.3)


def test_decision_and_probability_agree_on_imbalanced_pairs():
    """The threshold by balanced accuracy sits where the 50/50 calibration says 0.5 (the most accurate one on
    1:20 pairs sits far nearer, where p(same) is ~0.9); the calibration centred on it makes d <= threshold and
    p >= 0.5 the same decision for every pair."""
    d, same = imbalanced_pairs()
    threshold = best_threshold(d, same, balanced=True)
    assert threshold == pytest.approx(0.9, abs=0.05) and best_threshold(d, same) < 0.85
    a, b = fit_calibration(d, same)  # free, at a 50/50 prior: its 0.5 point is the balanced threshold's
    assert -b / a == pytest.approx(0.9, abs=0.02) and calibrated_probability(threshold, a, b) == pytest.approx(0.5, abs=0.05)
    a, b = fit_calibration(d, same, center=threshold)
    assert a < -5 and calibrated_probability(threshold, a, b) == pytest.approx(0.5, abs=1e-9)
    np.testing.assert_array_equal(d <= threshold, calibrated_probability(d, a, b) >= 0.5)
    report = verification_report(d, same, np.arange(len(d)) % 5)
    assert report["threshold"] == threshold and report["threshold_rule"] == THRESHOLD_RULE == "balanced accuracy"
    assert report["fold_threshold"] == [best_threshold(d[np.arange(len(d)) % 5 != k], same[np.arange(len(d)) % 5 != k],
                                                       balanced=True) for k in range(5)]


def test_perfect_separation():
    d = np.array([0.1, 0.2, 0.3, 0.35, 1.0, 1.5, 2.0, 3.0])
    same = np.arange(8) < 4
    report = verification_report(d, same, np.arange(8) % 2)
    assert report["fold_accuracy"] == [1.0, 1.0] and report["accuracy_mean"] == 1.0 and report["accuracy_std"] == 0.0
    assert report["auc"] == 1.0 and report["eer"] == 0.0
    assert 0.35 <= report["threshold"] < 1.0 and report["accuracy_at_threshold"] == 1.0
    assert report["genuine_pairs"] == 4 and report["impostor_pairs"] == 4
    entry = report["tar_at_far"]["0.01"]  # 4 impostor pairs cannot measure FAR 1e-2
    assert entry["tar"] is None and entry["impostor_pairs"] == 4 and "at least 100" in entry["note"]


def test_equal_error_rate_by_hand():
    report = verification_report([0.1, 0.3, 0.35, 0.2, 0.4, 0.5], [True] * 3 + [False] * 3, [0, 1, 0, 1, 0, 1])
    assert report["eer"] == pytest.approx(1 / 3) and report["eer_threshold"] == pytest.approx(0.3)
    # a tie between a genuine and an impostor pair: the ROC goes diagonally from (0, 0.5) to (0.5, 1)
    report = verification_report([0.1, 0.2, 0.2, 0.3], [True, True, False, False], [0, 1, 0, 1])
    assert report["eer"] == pytest.approx(0.25) and report["eer_threshold"] == pytest.approx(0.15)
    assert report["auc"] == pytest.approx(brute_auc(np.array([0.1, 0.2, 0.2, 0.3]), np.array([1, 1, 0, 0], bool)))


def test_k_fold_threshold_comes_from_the_other_folds():
    # fold 0 alone would put its threshold between 0.5 and 0.6; the other folds put it at 0.3
    d = np.array([0.5, 0.6, 0.2, 0.4, 0.2, 0.4])
    same = np.array([True, False, True, False, True, False])
    report = verification_report(d, same, np.array([0, 0, 1, 1, 2, 2]))
    assert report["fold_threshold"][0] == pytest.approx(0.3)
    assert report["fold_accuracy"] == [0.5, 1.0, 1.0]
    assert report["accuracy_mean"] == pytest.approx(5 / 6)
    assert report["accuracy_std"] == pytest.approx(np.std([0.5, 1, 1]))


def test_one_fold_gives_the_pooled_scores_only():
    report = verification_report([0.1, 0.3, 0.35, 0.2, 0.4, 0.5], [True] * 3 + [False] * 3, np.zeros(6, int))
    assert report["folds"] == 1 and report["fold_accuracy"] == [] and report["accuracy_mean"] is None
    assert report["threshold"] == pytest.approx(0.375) and report["accuracy_at_threshold"] == pytest.approx(5 / 6)


def test_balanced_accuracy_weighs_genuine_and_impostor_pairs_alike():
    """1 genuine : 4 impostor pairs, the genuine one missed: plain accuracy 4/5, balanced (0 + 1) / 2."""
    d, same = [0.9, 0.1, 0.2, 0.3, 0.4], [True, False, False, False, False]
    assert balanced_accuracy_at(d, same, 0.05) == 0.5 and accuracy_at(d, same, 0.05) == pytest.approx(0.8)
    assert balanced_accuracy_at(d, same, 0.35) == pytest.approx((0 + 1 / 4) / 2)
    report = verification_report(d, same, np.zeros(5, int))  # the best balanced threshold accepts nothing
    assert report["balanced_accuracy_at_threshold"] == 0.5 and report["accuracy_at_threshold"] == pytest.approx(0.8)


@pytest.mark.parametrize("seed", [0, 1])
def test_auc_eer_and_roc_agree_with_brute_force(seed):
    d, same, fold = _random_pairs(seed)
    report = verification_report(d, same, fold)
    assert report["auc"] == pytest.approx(brute_auc(d, same), abs=1e-12)
    roc = report["roc"]
    for far, tar, t in zip(roc["far"], roc["tar"], roc["threshold"]):  # each corner is a real threshold
        assert far == pytest.approx(np.mean(d[~same] <= t)) and tar == pytest.approx(np.mean(d[same] <= t))


@pytest.mark.parametrize("far", [1e-2, 1e-3])
def test_tar_at_far_matches_every_threshold_tried(far):
    rng = np.random.default_rng(5)
    same = np.r_[np.ones(500, bool), np.zeros(3000, bool)]
    d = np.round(np.where(same, rng.normal(0.7, 0.3, 3500), rng.normal(1.5, 0.3, 3500)), 2)  # ties
    entry = tar_at_far(d, same, far)
    candidates = np.r_[-1.0, np.unique(d)]
    allowed = [t for t in candidates if np.mean(d[~same] <= t) <= far]
    best = max(allowed)
    assert entry["tar"] == pytest.approx(np.mean(d[same] <= best))
    assert entry["false_accepts"] == np.sum(d[~same] <= best) and entry["false_accepts"] <= far * 3000
    assert np.mean(d[~same] <= entry["threshold"]) <= far and np.mean(d[same] <= entry["threshold"]) == entry["tar"]
    assert entry["impostor_pairs"] == 3000 and entry["note"] is None


def test_tar_at_far_needs_one_over_far_impostor_pairs():
    d, same = np.r_[np.zeros(10), np.ones(999)], np.r_[np.ones(10, bool), np.zeros(999, bool)]
    assert tar_at_far(d, same, 1e-3)["tar"] is None and tar_at_far(d, same, 1e-3)["impostor_pairs"] == 999
    d, same = np.r_[d, 1.0], np.r_[same, False]
    assert tar_at_far(d, same, 1e-3)["tar"] == 1.0  # 1000: measurable, zero false accepts allowed here


# --- calibration ------------------------------------------------------------------------------------------

def test_calibration_recovers_a_known_logistic_model():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 2.5, 20000)
    same = rng.random(20000) < calibrated_probability(d, -5.0, 4.0)
    a, b = fit_calibration(d, same, prior=None)
    assert a == pytest.approx(-5.0, abs=0.25) and b == pytest.approx(4.0, abs=0.2)
    a2, b2 = fit_calibration(d, same)  # prior 0.5: about the same slope, the intercept moved by the sample's log-odds
    share = same.mean()
    assert a2 == pytest.approx(a, abs=0.1) and b2 == pytest.approx(b - np.log(share / (1 - share)), abs=0.1)


def test_calibration_centred_on_a_threshold_fits_the_slope_alone():
    d = np.array([0.1, 0.2, 0.3, 1.1, 1.3, 1.6])
    a, b = fit_calibration(d, [True, True, True, False, False, False], center=0.5)
    assert a < -5 and b == pytest.approx(-a * 0.5) and calibrated_probability(0.5, a, b) == 0.5
    a, b = fit_calibration(d, [False, False, False, True, True, True], center=0.5)  # farther = same: no information
    assert (a, b) == (0.0, 0.0) and calibrated_probability(0.1, a, b) == 0.5


def test_calibration_stays_finite_on_separable_pairs():
    d = np.array([0.1, 0.2, 0.3, 1.1, 1.3, 1.6])
    a, b = fit_calibration(d, [True, True, True, False, False, False])
    assert np.isfinite([a, b]).all() and a < -5
    assert calibrated_probability(0.1, a, b) > 0.95 and calibrated_probability(1.6, a, b) < 0.05
    assert calibrated_probability(0.7, a, b) == pytest.approx(0.5, abs=0.1)  # the middle of the gap
    assert calibrated_probability(np.array([0.1, 1.6]), a, b).shape == (2,)


# --- identification ---------------------------------------------------------------------------------------

def test_identification_top1_and_top5():
    # each person's images sit near their own axis, so every probe is nearest its own gallery image
    centres = np.eye(8)
    rng = np.random.default_rng(0)
    labels = np.r_[np.repeat(np.arange(7), 3), 7]  # person 7 has one image: enrolled, never probed
    embeddings = centres[labels] + 0.01 * rng.normal(size=(len(labels), 8))
    report = identification_report(embeddings, labels, seed=0)
    assert report["gallery_identities"] == 8 and report["probes"] == 14 and report["single_image_identities"] == 1
    assert report["top1_accuracy"] == 1.0 and report["top5_accuracy"] == 1.0 and report["note"] is None
    collapsed = identification_report(np.ones_like(embeddings), labels, seed=0)  # ties count against a probe
    assert collapsed["top1_correct"] == 0 and collapsed["top5_correct"] == 0
    again = identification_report(embeddings, labels, seed=0)
    assert again == report


def test_identification_with_a_pair_head_ranks_by_the_heads_distance():
    """A binary run's gallery ranks by its head: top-1 / top-5 equal a brute-force ranking by pair_distances(head=),
    and differ from the squared distance's on embeddings where the two orders disagree."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(12), 3)  # sorted: image k of person p is row 3 p + k
    embeddings = rng.normal(size=(36, 6))
    head = (rng.normal(size=6) * [-3, -3, 2, 2, 0, 0], 0.3)  # some weights positive: not a monotone of L2
    report = identification_report(embeddings, labels, seed=1, head=head)
    counts = np.bincount(labels)
    gallery = np.r_[0, np.cumsum(counts)[:-1]] + np.floor(np.random.default_rng(1).random(12) * counts).astype(int)
    probes = np.setdiff1d(np.arange(36), gallery)
    top = [0, 0]
    for p in probes:
        d = pair_distances(embeddings, np.full(12, p), gallery, head=head)
        rank = np.sum(d <= d[labels[p]]) - 1
        top[0] += rank < 1
        top[1] += rank < 5
    assert (report["top1_correct"], report["top5_correct"]) == tuple(top)
    assert (report["top1_correct"], report["top5_correct"]) != (
        lambda r: (r["top1_correct"], r["top5_correct"]))(identification_report(embeddings, labels, seed=1))


def test_identification_ranks_the_probe_among_other_people():
    # person 0: two images 80 degrees apart, mirror images in y; everyone else one image in the plane y = 0,
    # so equally far from either of person 0's images: the ranks do not depend on which one is enrolled
    mirror = np.radians(40)
    person0 = [[np.cos(mirror), np.sin(mirror), 0], [np.cos(mirror), -np.sin(mirror), 0]]

    def report(angles, seed):
        others = [[np.cos(a), 0, np.sin(a)] for a in np.radians(angles)]
        return identification_report(np.array(person0 + others), [0, 0, *range(1, len(angles) + 1)], seed=seed)

    for seed in range(4):
        four_nearer = report([0, 20, 40, 60, 85, 120], seed)  # angles under 77 degrees are nearer than 80
        assert (four_nearer["probes"], four_nearer["single_image_identities"]) == (1, 6)
        assert (four_nearer["top1_correct"], four_nearer["top5_correct"]) == (0, 1)
        five_nearer = report([0, 20, 40, 60, 70, 120], seed)
        assert (five_nearer["top1_correct"], five_nearer["top5_correct"]) == (0, 0)
        assert report([85, 120], seed)["top1_correct"] == 1 and "top-5" in report([85, 120], seed)["note"]


# --- end to end and pictures --------------------------------------------------------------------------------

def test_pairs_to_pictures(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(40), 6)
    embeddings = rng.normal(size=(40, 16))[labels] + 0.6 * rng.normal(size=(240, 16))
    pairs = make_pairs(labels, folds=10, seed=0)
    d = pair_distances(embeddings, pairs.i, pairs.j)
    report = verification_report(d, pairs.same, pairs.fold)
    assert report["genuine_pairs"] == 40 * 15 and report["impostor_pairs"] == 10 * (24 * 23 // 2 - 60)
    assert 0.8 < report["accuracy_mean"] <= 1.0 and report["tar_at_far"]["0.001"]["tar"] is not None
    rows = hardest_pairs(d, pairs.same, count=3)
    assert list(pairs.same[rows]) == [True] * 3 + [False] * 3 and d[rows[0]] == d[pairs.same].max()
    images = rng.integers(0, 255, (240, 12, 10, 3), dtype=np.uint8)
    save_roc(report, tmp_path / "roc.png")
    save_distance_histogram(d, pairs.same, report["threshold"], tmp_path / "distances.png")
    save_embedding_map(embeddings, labels, None, tmp_path / "many.png")
    save_embedding_map(embeddings, labels, None, tmp_path / "drawn.png", max_people=5)
    save_embedding_map(embeddings[:60], labels[:60], [f"person {p}" for p in range(40)], tmp_path / "few.png")
    save_pair_sheet(images[pairs.i[rows]], images[pairs.j[rows]], d[rows], pairs.same[rows], report["threshold"],
                    tmp_path / "pairs.png")
    some = np.r_[np.flatnonzero(pairs.same)[:20], np.flatnonzero(~pairs.same)[:30]]  # too few for TAR@FAR
    few = verification_report(d[some], pairs.same[some], np.arange(50) % 2)
    assert all(entry["tar"] is None for entry in few["tar_at_far"].values())
    save_roc(few, tmp_path / "roc_few.png")
    names = ("roc", "distances", "many", "drawn", "few", "pairs", "roc_few")
    for name in names:
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.png" for n in names)  # no temporaries left


def test_scores_and_pictures_load_without_tensorflow():
    code = ("import sys, apps.face_verification.verification, apps.face_verification.pictures; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], check=True, timeout=120)


def test_default_folds_give_every_fold_five_people_or_lfws_ten():
    assert [default_folds(n) for n in (4, 9, 10, 14, 15, 27, 49, 50, 1680)] == [2, 2, 2, 2, 3, 5, 9, 10, 10]
