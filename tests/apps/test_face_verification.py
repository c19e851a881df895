"""The face-verification app end to end on tiny settings: train, evaluate, predict (pairs and a gallery),
calibrate, export with its `verify` signature; the user errors a person can meet."""
import dataclasses
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from data.faces.sources import load_embedded_faces
from tests.conftest import last_line, run_main, run_ok

APP = "face_verification"
TINY = ["--model.backbone", "resnet", "--model.weights", "none", "--model.width", "4", "--model.depth", "1",
        "--model.embedding_dim", "16", "--data.image_size", "32", "--epochs", "1", "--learning_rate", "0.003",
        "--data.identities_per_batch", "6", "--data.images_per_identity", "3", "--verbose", "line"]


def _face(path, index):
    Image.fromarray(load_embedded_faces().images[index, ..., 0]).save(path)
    return path


def _people(root, people=(3, 7, 12), per_person=4):
    """Identity folders of AT&T people (the test split's or not: calibration does not care)."""
    faces = load_embedded_faces()
    for person in people:
        (root / f"s{person + 1}").mkdir(parents=True)
        for k in range(per_person):
            Image.fromarray(faces.images[person * 10 + k, ..., 0]).save(root / f"s{person + 1}" / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("faces") / "run"
    proc = run_ok(APP, "train", "--run_dir", run_dir, *TINY)
    assert "global batch 18" in proc.stdout  # 6 people x 3 faces (--batch_size is evaluation's)
    return run_dir


def test_evaluate_reports_verification_and_identification(trained):
    proc = run_ok(APP, "evaluate", "--run_dir", trained)
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    # 10 test people: 2 folds of 5 (not 5 of 2, whose impostor pairs would be one pair of people each), every
    # in-fold impostor pair (50 images: 1,225 pairs less 225 genuine) in each
    assert metrics["folds"] == 2 and metrics["genuine_pairs"] == 10 * 45 and metrics["images"] == 100
    assert metrics["impostor_pairs"] == 2 * 1000
    assert 0 <= metrics["accuracy_mean"] <= 1 and 0 <= metrics["auc"] <= 1 and 0 <= metrics["eer"] <= 1
    assert set(metrics["tar_at_far"]) == {"0.01", "0.001"}
    assert metrics["identification"]["probes"] == 90 and metrics["identification"]["gallery_identities"] == 10
    for picture in ("roc.png", "distances.png", "embedding.png", "hardest_pairs.png"):
        assert (trained / "eval" / picture).stat().st_size > 1000
    calibration = json.loads((trained / "calibration.json").read_text())
    assert calibration["slope"] < 0 and 0 < calibration["threshold"] < 4
    assert "verification accuracy" in proc.stdout and "identification top-1" in proc.stdout
    history = (trained / "history.csv").read_text().splitlines()
    assert "active_triplets" in history[0]  # the training curve of the share of active triplets


def test_a_run_keeps_the_framing_it_was_trained_with(trained, tmp_path):
    """The framing is recorded with the run; a run recorded before --data.square_crop keeps its whole square;
    a data source given later (calibrate on a folder) does not reframe the faces the network learned."""
    import shutil

    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.face_verification.app import FaceVerification
    from data.faces.pipeline import ATT_SQUARE_CROP, square_mode

    state = json.loads((trained / "state.json").read_text())
    assert (state["square"], state["square_crop"]) == ("bottom", ATT_SQUARE_CROP)
    cfg = load_saved_config(FaceVerification.Config, trained / "config.json")
    folder = FaceVerification(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="folder")), trained)
    runner.load_trained(folder)
    assert square_mode(folder.config.data) == ("bottom", ATT_SQUARE_CROP)
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    (old / "state.json").write_text(json.dumps({"identities": state["identities"]}))
    app = FaceVerification(cfg, old)
    runner.load_trained(app)
    assert square_mode(app.config.data) == "bottom"


def test_predict_pair_and_gallery(trained, tmp_path):
    a, b, c = _face(tmp_path / "a.png", 0), _face(tmp_path / "b.png", 1), _face(tmp_path / "c.png", 395)
    again = _face(tmp_path / "again.png", 0)  # the first face itself: distance 0, the same person at any threshold
    proc = run_ok(APP, "predict", a, b, c, again, "--run_dir", trained)
    lines = [line for line in proc.stdout.splitlines() if " vs " in line]
    assert len(lines) == 3 and lines[2].startswith(f"{a} vs {again}: distance 0.0000 ")
    for line in lines:  # "... distance D (threshold T) -> same person, probability same P"
        d, t = float(line.split("distance ")[1].split()[0]), float(line.split("threshold ")[1].split(")")[0])
        p = float(line.split("probability same ")[1])
        assert ("-> same person" in line) == (d <= t) == (p >= 0.5) and ("-> different people" in line) == (d > t)
    gallery = _people(tmp_path / "gallery", people=(0, 39), per_person=3)  # s1's faces 0-2 and s40's 390-392
    proc = run_ok(APP, "predict", "--gallery", gallery, _face(tmp_path / "q.png", 5), again, "--run_dir", trained)
    query, enrolled = [line for line in proc.stdout.splitlines() if line.startswith(str(tmp_path))]
    assert enrolled == f"{again}: s1 (closest s1, distance 0.0000, threshold {t:.4f})"  # itself, enrolled
    d = float(query.split("distance ")[1].split(",")[0])
    assert query.startswith(f"{tmp_path / 'q.png'}: {'unknown' if d > t else query.split('closest ')[1].split(',')[0]} ")


def test_evaluate_on_an_lfw_pairs_file(trained, tmp_path):
    """LFW's layout (name/name_0001.jpg, PNG found too) and pairs.txt; the calibration says where it came from."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "calibration.json").unlink(missing_ok=True)
    faces = load_embedded_faces()
    for person, name in enumerate(("Ann_A", "Bob_B", "Cy_C", "Di_D")):
        (tmp_path / "lfw" / name).mkdir(parents=True)
        for k in (1, 2):
            Image.fromarray(faces.images[person * 10 + k, ..., 0]).save(tmp_path / "lfw" / name / f"{name}_{k:04d}.png")
    (tmp_path / "pairs.txt").write_text("2 2\nAnn_A 1 2\nBob_B 1 2\nAnn_A 1 Bob_B 2\nBob_B 1 Ann_A 2\n"
                                        "Cy_C 1 2\nDi_D 1 2\nCy_C 1 Di_D 2\nDi_D 1 Cy_C 1\n")
    run_ok(APP, "evaluate", "--run_dir", run, "--data.pairs", tmp_path / "pairs.txt", "--data.path", tmp_path / "lfw")
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["pairs_file"] == str(tmp_path / "pairs.txt") and metrics["images"] == 8
    assert json.loads((run / "calibration.json").read_text())["source"] == f"evaluate: pairs of {tmp_path / 'pairs.txt'}"
    run_ok(APP, "calibrate", "--run_dir", run, "--data.pairs", tmp_path / "pairs.txt", "--data.path", tmp_path / "lfw")
    calibration = json.loads((run / "calibration.json").read_text())
    assert calibration["source"].startswith("calibrate:") and calibration["pairs"] == 8 and calibration["genuine"] == 4
    (tmp_path / "matched.txt").write_text("1 2\nAnn_A 1 2\nBob_B 1 2\nCy_C 1 2\nDi_D 1 2\n")
    code, _, err = run_main(APP, "evaluate", "--run_dir", run, "--data.pairs", tmp_path / "matched.txt",
                            "--data.path", tmp_path / "lfw")
    assert code == 2 and last_line(err) == (f"error: {tmp_path / 'matched.txt'} lists only matched pairs (4): verification "
                                            "needs both kinds, same person (name n1 n2) and different people "
                                            "(name1 n1 name2 n2)")
    shutil.rmtree(tmp_path / "lfw" / "Bob_B"), shutil.rmtree(tmp_path / "lfw" / "Cy_C"), shutil.rmtree(tmp_path / "lfw" / "Di_D")
    code, _, err = run_main(APP, "calibrate", "--run_dir", run, "--data.path", tmp_path / "lfw")
    assert code == 2 and last_line(err) == (f"error: calibration needs genuine and impostor pairs: {tmp_path / 'lfw'} "
                                            "holds one person; give at least two people, one with 2+ images")


def test_predict_decides_by_the_calibrated_threshold(trained, tmp_path):
    """The threshold in calibration.json decides: 0 makes every pair "different people" and every gallery face
    "unknown" (its closest person still named); 4, the largest squared distance of unit vectors, the opposite."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    a, b = _face(tmp_path / "a.png", 0), _face(tmp_path / "b.png", 1)
    gallery = _people(tmp_path / "gallery", people=(0, 39), per_person=3)
    probe = _face(tmp_path / "probe.png", 5)  # person 0's sixth image: not among the gallery's three
    run_ok(APP, "predict", a, b, "--run_dir", run)  # makes calibration.json when the run has none
    calibration = json.loads((run / "calibration.json").read_text())
    for threshold, pair, person in ((0.0, "different people", "unknown"), (4.0, "same person", "s")):
        calibration.update(threshold=threshold, slope=-10.0, intercept=10.0 * threshold)
        (run / "calibration.json").write_text(json.dumps(calibration))
        line = [x for x in run_ok(APP, "predict", a, b, "--run_dir", run).stdout.splitlines() if " vs " in x][0]
        assert f"-> {pair}, probability same" in line, line
        out = run_ok(APP, "predict", "--gallery", gallery, probe, "--run_dir", run).stdout
        assert f"{probe}: {person}" in out and "(closest s" in out, out


def test_calibrate_on_own_folders(trained, tmp_path):
    people = _people(tmp_path / "mine")
    before = json.loads((trained / "calibration.json").read_text()) if (trained / "calibration.json").is_file() else None
    proc = run_ok(APP, "calibrate", "--run_dir", trained, "--data.path", people)
    result = json.loads((trained / "calibrate.json").read_text())
    after = json.loads((trained / "calibration.json").read_text())
    assert after["source"].startswith("calibrate:") and after["genuine"] == 3 * 6 and after["pairs"] == 18 + 3 * 16
    assert result["threshold"] == after["threshold"] and 0 <= result["balanced_accuracy_at_threshold"] <= 1
    assert after != before and "threshold" in proc.stdout
    evaluated = run_ok(APP, "evaluate", "--run_dir", trained, "--examples", "2").stdout  # your calibration stays
    assert json.loads((trained / "calibration.json").read_text()) == after
    assert f"note: {trained / 'calibration.json'} ({after['source']}) is kept for predict and export" in evaluated
    code, _, err = run_main(APP, "export", "--run_dir", trained, "--flip_test", "--export_dir", tmp_path / "refused")
    assert code == 2 and err.rstrip().endswith("give --flip_test false, or calibrate again with --flip_test true first")


def test_export_embeddings_and_verify(trained, tmp_path):
    run_ok(APP, "export", "--run_dir", trained, "--export_dir", tmp_path / "exports")
    a, b = _face(tmp_path / "a.pgm", 0), _face(tmp_path / "b.png", 20)
    Image.open(a).save(tmp_path / "a.pgm", format="PPM")  # binary PGM bytes, as the AT&T files are
    import tensorflow as tf

    m = tf.saved_model.load(str(tmp_path / "exports" / "1"))  # in a clean process: test_every_app.py
    bytes_a, bytes_b = (tmp_path / "a.pgm").read_bytes(), b.read_bytes()
    e = m.signatures["serving_default"](images=tf.constant([bytes_a, bytes_b]))["embeddings"].numpy()
    v = m.signatures["verify"](images_a=tf.constant([bytes_a, bytes_a]), images_b=tf.constant([bytes_a, bytes_b]))
    out = {"norms": (e ** 2).sum(1), "d": [float(x) for x in v["distances"]], "same": [bool(x) for x in v["same"]],
           "p": [float(x) for x in v["probability"]], "pair": float(((e[0] - e[1]) ** 2).sum())}
    assert np.allclose(out["norms"], 1, atol=1e-4)
    assert out["d"][0] == pytest.approx(0, abs=1e-5) and out["same"][0] and out["p"][0] > out["p"][1]
    assert out["d"][1] == pytest.approx(out["pair"], abs=1e-4)
    calibration = json.loads((trained / "calibration.json").read_text())
    assert out["same"][1] == (out["d"][1] <= calibration["threshold"])
    predicted = run_ok(APP, "predict", tmp_path / "a.pgm", b, "--run_dir", trained).stdout
    distance = float(predicted.split("distance ")[1].split()[0])  # the same crop, resize and network as the export
    assert distance == pytest.approx(out["d"][1], abs=2e-4)


def test_flip_test_calibrates_predicts_and_exports_mirror_invariant_embeddings(trained, tmp_path):
    """--flip_test: evaluate calibrates for the flip-averaged embeddings and says so in calibration.json; a
    command without the flag is then refused, naming the file and the flag; with it, predict and the export
    find a face and its mirror image the same."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)  # the module's run keeps its plain calibration
    (run / "calibration.json").unlink(missing_ok=True)  # evaluate keeps one that calibrate made
    run_ok(APP, "evaluate", "--run_dir", run, "--flip_test", "--examples", "2")
    assert json.loads((run / "calibration.json").read_text())["flip_test"] is True
    code, _, err = run_main(APP, "export", "--run_dir", run, "--export_dir", tmp_path / "refused")
    assert code == 2 and err.startswith(f"error: {run / 'calibration.json'} (evaluate: test pairs) is a threshold for "
                                        "embeddings made with --flip_test true, and this command has --flip_test false")
    assert not list((tmp_path / "refused").rglob("saved_model.pb"))
    face = _face(tmp_path / "face.png", 0)
    Image.open(face).transpose(Image.FLIP_LEFT_RIGHT).save(tmp_path / "mirror.png")
    predicted = run_ok(APP, "predict", face, tmp_path / "mirror.png", "--run_dir", run, "--flip_test").stdout
    assert float(predicted.split("distance ")[1].split()[0]) == pytest.approx(0, abs=1e-4)
    run_ok(APP, "export", "--run_dir", run, "--flip_test", "--export_dir", tmp_path / "exports")
    import tensorflow as tf

    m = tf.saved_model.load(str(tmp_path / "exports" / "1"))
    e = m.signatures["serving_default"](images=tf.constant([face.read_bytes(), (tmp_path / "mirror.png").read_bytes()]))
    np.testing.assert_allclose(e["embeddings"].numpy()[0], e["embeddings"].numpy()[1], atol=1e-4)


def test_circle_loss_trains_and_evaluates(tmp_path):
    run_ok(APP, "train", "--run_dir", tmp_path / "run", *TINY, "--loss", "circle")
    run_ok(APP, "evaluate", "--run_dir", tmp_path / "run", "--examples", "2")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["genuine_pairs"] == 450 and 0 < metrics["auc"] <= 1


def test_a_binary_run_compares_faces_with_its_trained_pair_head(tmp_path):
    """The binary loss trains a logistic head on |e_a - e_b|: evaluate (its calibration), predict and the export's
    verify score a pair by that head's negated logit, not by the squared distance it was never trained on."""
    import keras
    import tensorflow as tf

    run = tmp_path / "run"
    assert "binary: the pair head starts as the L1-distance classifier" in run_ok(
        APP, "train", "--run_dir", run, *TINY, "--loss", "binary").stdout
    run_ok(APP, "evaluate", "--run_dir", run, "--examples", "2")
    run_ok(APP, "export", "--run_dir", run, "--export_dir", tmp_path / "exports")
    a, b = _face(tmp_path / "a.png", 0), _face(tmp_path / "b.png", 20)
    m = tf.saved_model.load(str(tmp_path / "exports" / "1"))
    e = m.signatures["serving_default"](images=tf.constant([a.read_bytes(), b.read_bytes()]))["embeddings"].numpy()
    v = m.signatures["verify"](images_a=tf.constant([a.read_bytes()]), images_b=tf.constant([b.read_bytes()]))
    head = keras.saving.load_model(run / "model.keras", compile=False).get_layer("pair_logits").dense
    w, bias = head.get_weights()
    expected = -(np.abs(e[0] - e[1]) @ w[:, 0] + bias[0])
    assert abs(expected - np.sum((e[0] - e[1]) ** 2)) > 1e-3  # the two scores differ: the test tells them apart
    assert float(v["distances"][0]) == pytest.approx(expected, abs=1e-4)
    predicted = run_ok(APP, "predict", a, b, "--run_dir", run).stdout
    assert float(predicted.split("distance ")[1].split()[0]) == pytest.approx(expected, abs=2e-4)
    path = run / "calibration.json"
    evaluated = json.loads(path.read_text())
    assert evaluated["distance"] == "pair head's negated logit"
    path.write_text(json.dumps({**evaluated, "distance": "squared distance"}))  # as a run evaluated before the head
    code, _, err = run_main(APP, "predict", a, b, "--run_dir", run)
    assert code == 2 and last_line(err) == (f"error: {path} (evaluate: test pairs) is a threshold on the squared "
                                            "distance, and this run compares faces by the pair head's negated logit: "
                                            "run evaluate or calibrate")
    run_ok(APP, "calibrate", "--run_dir", run, "--data.path", _people(tmp_path / "mine"))
    assert json.loads(path.read_text())["distance"] == "pair head's negated logit"
    gallery = run_ok(APP, "predict", "--gallery", tmp_path / "mine", a, "--run_dir", run).stdout
    assert "(closest s" in gallery
    assert float(v["threshold"]) == pytest.approx(evaluated["threshold"])  # the export carries evaluate's calibration


def test_a_binary_run_starts_its_pair_head_as_the_l1_distance_classifier_of_its_training_faces():
    """Before the first step the head's logit is a falling line of the pairs' L1 distance (one weight for every
    dimension), its zero where the training pairs are best told apart: the head ranks them as that distance does
    and decides them as the best L1 threshold does (balanced), not at random as a random head would."""
    import keras

    from apps.face_verification.app import FaceVerification
    from apps.face_verification.config import FaceConfig
    from apps.face_verification.model import ModelConfig, embedding_function
    from apps.face_verification.verification import balanced_accuracy_at, best_threshold, make_pairs
    from data.faces.pipeline import FaceDataConfig

    app = FaceVerification(FaceConfig(loss="binary", data=FaceDataConfig(image_size=32), model=ModelConfig(
        backbone="resnet", weights=None, width=4, depth=1, embedding_dim=16)))
    keras.utils.set_random_seed(0)
    model = app.build_model()
    app.start_training(model)
    w, b = model.get_layer("pair_logits").dense.get_weights()
    assert w.shape == (16, 1) and np.all(w == w[0, 0]) and w[0, 0] < 0
    train = app.splits["train"]
    e = embedding_function(model)(train.images)
    i, j, same, _ = make_pairs(train.labels, 1, None, app.config.seed)
    l1 = np.abs(e[i] - e[j]).sum(-1)
    logits = l1 * w[0, 0] + b[0]
    best = balanced_accuracy_at(l1, same, best_threshold(l1, same, balanced=True))
    assert balanced_accuracy_at(-logits, same, 0.0) > best - 0.02 > 0.55


def test_user_errors(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "calibration.json").unlink(missing_ok=True)
    code, _, err = run_main(APP, "predict", _face(tmp_path / "a.png", 0), "--run_dir", run)
    assert code == 2 and "give two images" in err
    assert not (run / "calibration.json").exists()  # refused before calibrating on the test split
    code, _, err = run_main(APP, "calibrate", "--run_dir", trained)
    assert code == 2 and "calibrate needs your faces: --data.path" in err
    code, _, err = run_main(APP, "evaluate", "--run_dir", trained, "--eval_folds", "6")  # advice the flags accept
    assert code == 2 and last_line(err) == ("error: the run's test split holds 10 people, too few for --eval_folds 6 "
                                            "(two people each): give --eval_folds 5")
    code, _, err = run_main(APP, "evaluate", "--run_dir", trained, "--eval_folds", "1")
    assert code == 2 and last_line(err) == ("error: --eval_folds 1 leaves no other fold to choose each fold's threshold "
                                            "on: give 2 or more, or 0 (2 for these 10 people)")
    code, _, err = run_main(APP, "train", "--run_dir", tmp_path / "r", *TINY, "--data.test_fold", "7")
    assert code == 2 and "--data.test_fold 7 must be below --data.folds 4" in err
    code, _, err = run_main(APP, "train", "--run_dir", tmp_path / "r2", *TINY, "--loss", "triplets")
    assert code == 2 and "loss" in err and "batch_hard" in err


def test_a_test_split_without_two_images_of_anyone_is_a_user_error():
    """LFW-like folders where most people have one photo: the test split may hold no genuine pair."""
    import types

    from apps.core.errors import UserError
    from apps.face_verification.app import FaceVerification
    from apps.face_verification.config import FaceConfig
    from apps.face_verification.verification import pair_distances

    single = types.SimpleNamespace(labels=np.arange(10), images=np.zeros((10, 4, 4, 3), np.uint8))
    app = types.SimpleNamespace(config=FaceConfig(), test_split=lambda: single)
    with pytest.raises(UserError, match="none of the test split.s 10 people has two images"):
        FaceVerification._test_pairs(app, lambda images: np.eye(len(images), 16, dtype=np.float32), pair_distances)


def _tiny_model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def test_the_saved_threshold_and_probability_agree_on_imbalanced_pairs(tmp_path):
    """1:20 genuine:impostor pairs (calibrate on a folder, evaluate with many people): calibration.json's
    threshold is chosen by balanced accuracy, so that p(same) at it is 0.5 and "different people" never comes
    with p(same) > 0.5 (the most accurate threshold, at the 50/50 calibration's p ~0.9, did)."""
    from apps.face_verification.app import FaceVerification
    from apps.face_verification.config import FaceConfig
    from apps.face_verification.verification import calibrated_probability

    rng = np.random.default_rng(0)
    d = np.r_[rng.normal(0.6, 0.15, 100), rng.normal(1.2, 0.15, 2000)]
    same = np.arange(len(d)) < 100
    FaceVerification(FaceConfig(), tmp_path)._save_calibration(_tiny_model(), d, same, "calibrate: synthetic")
    calibration = json.loads((tmp_path / "calibration.json").read_text())
    assert calibration["threshold_rule"] == "balanced accuracy" and calibration["threshold"] == pytest.approx(0.9, abs=0.05)
    slope, intercept, threshold = calibration["slope"], calibration["intercept"], calibration["threshold"]
    assert calibrated_probability(threshold, slope, intercept) == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_array_equal(d <= threshold, calibrated_probability(d, slope, intercept) >= 0.5)


def test_a_calibration_of_earlier_weights_is_refused(trained, tmp_path):
    """train -> evaluate -> calibrate -> train further: predict and export refuse the calibration fitted on the
    earlier weights (one line: run evaluate or calibrate again); evaluate replaces calibrate's stale one; a
    calibration.json from before the fingerprint is accepted as it was."""
    from apps.face_verification.app import WEIGHTS_KEY

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    path = run / "calibration.json"
    a, b = _face(tmp_path / "a.png", 0), _face(tmp_path / "b.png", 1)
    run_ok(APP, "calibrate", "--run_dir", run, "--data.path", _people(tmp_path / "mine"))
    fitted = json.loads(path.read_text())
    assert len(fitted[WEIGHTS_KEY]) == 64
    run_ok(APP, "predict", a, b, "--run_dir", run)  # the same weights, loaded again: the same fingerprint
    extended = list(TINY)
    extended[extended.index("--epochs") + 1] = "2"
    run_ok(APP, "train", "--run_dir", run, *extended)  # extend the run by an epoch
    message = (f"error: {path} ({fitted['source']}) was fitted on earlier weights than the run's model.keras "
               "(trained again since): run evaluate or calibrate again")
    code, _, err = run_main(APP, "predict", a, b, "--run_dir", run)
    assert code == 2 and err.strip() == message
    code, _, err = run_main(APP, "export", "--run_dir", run, "--export_dir", tmp_path / "refused")
    assert code == 2 and err.strip() == message and not list((tmp_path / "refused").rglob("saved_model.pb"))
    path.write_text(json.dumps({k: v for k, v in fitted.items() if k != WEIGHTS_KEY}))  # an older run's file
    run_ok(APP, "predict", a, b, "--run_dir", run)
    path.write_text(json.dumps(fitted))
    evaluated = run_ok(APP, "evaluate", "--run_dir", run, "--examples", "2").stdout
    assert f"note: {path} ({fitted['source']}) was fitted on earlier weights of this run: replaced" in evaluated
    refitted = json.loads(path.read_text())
    assert refitted["source"] == "evaluate: test pairs" and refitted[WEIGHTS_KEY] != fitted[WEIGHTS_KEY]
    assert "->" in run_ok(APP, "predict", a, b, "--run_dir", run).stdout


def test_a_hand_edited_calibration_is_checked_in_one_line(trained, tmp_path):
    """A JSON typo, a missing or non-numeric key, a rising probability, a threshold moved without its
    intercept: one line naming the file and the key; a complete, consistent hand-made file is used as it is;
    evaluate replaces a damaged one."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    path = run / "calibration.json"
    a, b = _face(tmp_path / "a.png", 0), _face(tmp_path / "b.png", 1)
    for text, expected in [('{"threshold": 0.6, "slope": -10 "intercept": 6}', f"{path} is not valid JSON (Expecting"),
                           ('[0.6, -10, 6]', f"{path} holds a JSON list, not an object with threshold, slope"),
                           ('{"threshold": 0.6}', f'{path} has no "slope" (p(same) = sigmoid(slope * d + intercept)'),
                           ('{"slope": -10, "intercept": 6}', f'{path} has no "threshold": add it'),
                           ('{"threshold": "0.6", "slope": -10, "intercept": 6}',
                            f'{path}: "threshold" must be a finite number, not "0.6"'),
                           ('{"threshold": 0.6, "slope": NaN, "intercept": 6}', f'{path}: "slope" must be a finite number'),
                           ('{"threshold": 0.6, "slope": -10, "intercept": 6, "flip_test": "no"}',
                            f'{path}: "flip_test" must be a true or false, not "no"'),
                           ('{"threshold": 0.6, "slope": 10, "intercept": -6}',
                            f'{path}: "slope" must not be positive'),
                           ('{"threshold": 0.6, "slope": -10, "intercept": 6, "distance": "cosine"}',
                            f'{path}: "distance" must be "squared distance" or "pair head\'s negated logit" (a binary '
                            'run\'s), not "cosine"'),
                           ('{"threshold": 0.6, "slope": -10, "intercept": 1' + '0' * 400 + '}',
                            f'{path}: "intercept" must be a finite number, not 1000'),
                           ('{"threshold": 0.5, "slope": -10, "intercept": 6}',  # the threshold moved alone
                            f'{path}: at the threshold 0.5 the probability is 0.73, not 0.5, so "same person" and '
                            'p > 0.5 would disagree: set "intercept" to 5 (-slope * threshold), or run evaluate or '
                            'calibrate to refit both')]:
        path.write_text(text)
        code, _, err = run_main(APP, "predict", a, b, "--run_dir", run)
        assert code == 2 and err.startswith(f"error: {expected}") and len(err.strip().splitlines()) == 1, (text, err)
    path.write_text('{"threshold": 0.6, "slope": -10, "intercept": 6}')
    assert "(threshold 0.6000)" in run_ok(APP, "predict", a, b, "--run_dir", run).stdout
    path.write_text('{"threshold": 0.6, "slope": -10.3, "intercept": 6.2}')  # rounded by hand: p(0.6) = 0.505
    assert "(threshold 0.6000)" in run_ok(APP, "predict", a, b, "--run_dir", run).stdout
    # written before the fingerprint, when the intercept was fitted freely: used, with a note
    path.write_text('{"threshold": 0.6, "slope": -10, "intercept": 8, "source": "evaluate: test pairs"}')
    out = run_ok(APP, "predict", a, b, "--run_dir", run).stdout
    assert f"note: {path} is from an older version (evaluate: test pairs): its probability is 0.88 at its" in out
    assert "(threshold 0.6000)" in out
    path.write_text('{"threshold": 0.6,')
    evaluated = run_ok(APP, "evaluate", "--run_dir", run, "--examples", "2").stdout
    assert f"note: {path} could not be read as a calibration: replaced" in evaluated
    assert json.loads(path.read_text())["source"] == "evaluate: test pairs"


def test_wise_ft_mixes_the_fine_tuned_weights_with_the_pretrained_ones(tmp_path):
    """--model.wise_ft a saves (1 - a) x pretrained + a x fine-tuned for the layers that started pretrained: at 0
    a trained run saves the pretrained trunk exactly (the runner calls the hook after training); at 0.5 the midpoint;
    a projection that started random keeps its trained weights; without pretrained weights or at 1 nothing moves."""
    import keras

    from apps.face_verification.app import FaceVerification
    from apps.face_verification.config import FaceConfig
    from apps.face_verification.model import ModelConfig
    from data.faces.pipeline import FaceDataConfig

    imagenet = ["--model.backbone", "squeezenet", "--model.weights", "imagenet", "--data.image_size", "48", "--epochs",
                "1", "--data.identities_per_batch", "6", "--data.images_per_identity", "3", "--model.embedding_dim", "16",
                "--verbose", "line"]
    out = run_ok(APP, "train", "--run_dir", tmp_path / "run", *imagenet, "--model.wise_ft", "0").stdout
    assert "WiSE-FT: the saved weights of backbone are 1 x the pretrained (imagenet) + 0 x the fine-tuned" in out

    def app_of(size=104, **model):
        return FaceVerification(FaceConfig(model=dataclasses.replace(ModelConfig(weights="dlib"), **model),
                                           data=FaceDataConfig(image_size=size)))

    start = app_of(48, backbone="squeezenet", weights="imagenet", embedding_dim=16).build_model().get_layer("backbone")
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False).get_layer("backbone")
    assert len(saved.weights) == len(start.weights) > 0
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), start.get_weights()))  # training undone
    app = app_of()
    pretrained = app.build_model().get_weights()
    model = app.build_model()
    model.set_weights([w + 1.0 for w in pretrained])  # as if fine-tuning had moved every weight by 1
    app.finish_training(model)
    assert all(np.allclose(w, p + 0.5, atol=1e-6) for w, p in zip(model.get_weights(), pretrained))
    squeezenet = app_of(64, backbone="squeezenet", weights="imagenet")  # ImageNet trunk, a random projection
    start = squeezenet.build_model()
    model = squeezenet.build_model()
    model.set_weights([w + 1.0 for w in start.get_weights()])
    squeezenet.finish_training(model)
    for layer, moved in (("backbone", 0.5), ("projection", 1.0)):
        assert all(np.allclose(w, p + moved, atol=1e-6) for w, p in zip(model.get_layer(layer).get_weights(),
                                                                         start.get_layer(layer).get_weights()))
    for other in (app_of(wise_ft=1.0), app_of(32, weights=None, backbone="resnet", width=4, depth=1)):
        model = other.build_model()
        before = model.get_weights()
        other.finish_training(model)
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
