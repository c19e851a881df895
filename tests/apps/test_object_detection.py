"""Object detection end to end on generated scenes: train, evaluate, predict, export and serve (the export's
reload in a clean process: test_every_app.py)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.object_detection.boxes import Anchors, BoxCoder
from tests.conftest import last_line, run_main, run_ok
from tests.data.boxes.test_sources import write_voc

APP = "object_detection"
TINY = ["--data.image_size", "64", "--data.train_scenes", "64", "--data.val_scenes", "16", "--data.test_scenes", "16",
        "--epochs", "1", "--batch_size", "16", "--model.width", "8", "--model.fpn_width", "16", "--model.head_width", "16",
        "--model.head_depth", "1", "--score_threshold", "0.001", "--draw_threshold", "0.0", "--verbose", "line"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, run_ok(APP, "train", "--run_dir", run_dir, *TINY)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two images of other sizes than the canvas: a scene scaled up (JPEG) and a wide one (PNG)."""
    from data.generated.scenes import make_scenes

    folder = tmp_path_factory.mktemp("photos")
    images = make_scenes(2, seed=9, size=64)[0]
    Image.fromarray(images[0]).resize((150, 150)).save(folder / "a.jpg")
    Image.fromarray(np.concatenate([images[1], images[0]], axis=1)).save(folder / "b.png")
    return folder


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The run's export with --max_detections 5 (its reload in a clean process: test_every_app.py)."""
    folder = tmp_path_factory.mktemp("exports")
    run_ok(APP, "export", "--run_dir", trained[0], "--export_dir", folder, "--max_detections", "5")
    return tf.saved_model.load(str(folder / "1")).signatures["serving_default"]


def test_train_writes_the_run(trained):
    run_dir, proc = trained
    assert "4/4 - " in proc.stdout  # 64 scenes in batches of 16
    for name in ("model.keras", "state.json", "learning_curves.png", "data_report.png"):
        assert (run_dir / name).is_file(), name
    header = (run_dir / "history.csv").read_text().splitlines()[0]
    assert {"box_loss", "cls_loss", "val_loss"} <= set(header.split(","))
    state = json.loads((run_dir / "state.json").read_text())
    assert state["class_names"] == [str(i) for i in range(10)] and state["image_size"] == 64
    # digits of 13..29 px on a 64-pixel canvas, under the default anchors' 16 px and up: fitted (test_detection_anchors)
    assert state["anchors"]["fitted"] and len(state["anchors"]["aspect_ratios"]) == 3


def test_evaluate_reports_map_per_class_and_pr_curve(trained):
    run_dir, _ = trained
    proc = run_ok(APP, "evaluate", "--run_dir", run_dir)
    assert "mAP@0.5" in proc.stdout
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 16 and metrics["objects"] > 16 and metrics["detections"] > 0
    assert 0 <= metrics["map_50_95"] <= metrics["map_50"] <= 1
    assert set(metrics["per_class"]) == {str(i) for i in range(10)}
    errors = metrics["box_errors"]  # at --draw_threshold 0: every detection kept (score_threshold 0.001) sorted once
    assert errors["score_threshold"] == 0.001 and errors["all"]["images"] == 16
    assert errors["all"]["matched"] + errors["all"]["missed"] == metrics["objects"]
    assert sum(errors["all"][k] for k in ("matched", "doubled", "merged", "loose", "background", "ignored")) == \
        metrics["detections"]
    assert "at score >= 0.00: " in proc.stdout and "crowded images (" in proc.stdout
    assert (run_dir / "eval" / "pr_curve.png").stat().st_size > 1000
    assert len(list((run_dir / "eval" / "examples").glob("*.png"))) == 8


def _parse_record(line):
    """'path: N object(s): name score [x0, y0, x1, y1], ... -> picture' -> (path, [(name, score, box)])."""
    path, rest = line.split(": ", 1)
    found = []
    if "object(s): " in rest:
        for item in rest.split("object(s): ", 1)[1].rsplit(" -> ", 1)[0].split("], "):
            name, score, box = item.split(" ", 2)
            found.append((name, float(score), [float(v) for v in box.strip("[]").split(", ")]))
    return path.split("/")[-1], found


def test_export_gives_the_detections_of_predict(trained, photos, exported):
    run_dir, _ = trained
    proc = run_ok(APP, "predict", photos, "--run_dir", run_dir, "--max_detections", "5")
    predicted = dict(_parse_record(line) for line in proc.stdout.splitlines() if "object(s)" in line)
    assert set(predicted) == {"a.jpg", "b.png"} and all(len(v) == 5 for v in predicted.values())
    assert (run_dir / "predictions" / "a.png").is_file() and (run_dir / "predictions" / "b.png").is_file()
    serve = exported
    paths = sorted(photos.iterdir())
    out = {k: v.numpy() for k, v in serve(images=tf.constant([p.read_bytes() for p in paths])).items()}
    result = {"outputs": sorted(out), "detections": {p.name: [
        (out["class_names"][i, j].decode(), float(out["scores"][i, j]), out["boxes"][i, j].tolist())
        for j in range(int(out["num_detections"][i]))] for i, p in enumerate(paths)}}
    assert result["outputs"] == ["boxes", "class_ids", "class_names", "num_detections", "scores"]
    for name, found in predicted.items():
        exported = result["detections"][name]
        assert [d[0] for d in exported] == [d[0] for d in found]
        np.testing.assert_allclose([d[1] for d in exported], [d[1] for d in found], atol=0.006)  # printed with 2 decimals
        np.testing.assert_allclose([d[2] for d in exported], [d[2] for d in found], atol=0.51)  # printed as whole pixels
    boxes = np.array([d[2] for d in result["detections"]["b.png"]])
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 128).all() and (boxes[:, [1, 3]] <= 64).all()  # b.png is 128x64


def test_a_run_records_its_fitted_anchors_and_resumes_with_them(trained, tmp_path):
    source, first = trained
    run_dir = Path(shutil.copytree(source, tmp_path / "run"))  # a copy: this test extends it
    record = json.loads((run_dir / "state.json").read_text())["anchors"]
    assert record["fitted"]
    assert record["configured"] == {"anchors": "fit", "anchor_size": 2.0, "aspect_ratios": [0.5, 1.0, 2.0]}
    assert "anchors: coverage " in first.stdout and (run_dir / "data_report.png").is_file()
    fitted = Anchors(record["anchor_size"], tuple(record["aspect_ratios"]))
    # More epochs, with other anchor flags: the run keeps the anchors its weights were trained with.
    proc = run_ok(APP, "train", "--run_dir", run_dir, *TINY, "--epochs", "2", "--model.anchor_size", "3")
    assert f"anchors: the run's ({fitted.describe()})" in proc.stdout and "note: the run's anchors" in proc.stdout
    assert "anchors: coverage" not in proc.stdout  # not fitted again
    assert json.loads((run_dir / "state.json").read_text())["anchors"] == record


def test_a_loaded_run_and_its_export_use_the_recorded_anchors(trained, exported):
    """What evaluate and predict load (the app from the run's files) and what the export serves: the fitted
    anchors, told apart from the configured ones by the boxes they decode."""
    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.object_detection.app import DetectorServing, ObjectDetection
    from data.generated.scenes import make_scenes

    run_dir, _ = trained
    record = json.loads((run_dir / "state.json").read_text())["anchors"]
    app = ObjectDetection(load_saved_config(ObjectDetection.Config, run_dir / "config.json"), run_dir)
    model = runner.load_trained(app)
    fitted = BoxCoder.from_config(64, app.config.model, Anchors(record["anchor_size"], tuple(record["aspect_ratios"])))
    np.testing.assert_array_equal(app.coder.anchors, fitted.anchors)
    image = tf.constant([tf.io.encode_png(make_scenes(1, seed=5, size=64)[0][0]).numpy()])
    served_boxes = exported(images=image)["boxes"]

    def served(coder):
        cfg = app.config
        module = DetectorServing(model, coder, app.class_names, 64, cfg.score_threshold, cfg.nms_iou,
                                 5)  # held: a tf.function method keeps only a weak reference
        return module.serve(image)

    np.testing.assert_allclose(served_boxes, served(fitted)["boxes"], atol=1e-3)
    configured = served(BoxCoder.from_config(64, app.config.model))["boxes"]
    assert not np.allclose(served_boxes, configured, atol=1e-3)  # the check tells the two apart


def test_user_errors_are_one_line(trained, tmp_path):
    run_dir, _ = trained
    (tmp_path / "notes.txt").write_text("not an image")
    proc = run_main(APP, "predict", tmp_path / "notes.txt", "--run_dir", run_dir)
    assert proc.returncode == 2 and last_line(proc.stderr) == (
        f"error: {tmp_path / 'notes.txt'}: refused by the decoders the exported models use (`images` holds bytes that "
        "are not a JPEG/PNG/GIF/BMP/WebP/PGM image); convert it to PNG or JPEG")
    Image.fromarray(np.full((40, 40), 4095, np.uint16)).save(tmp_path / "twelve_bit.png")
    proc = run_main(APP, "predict", tmp_path / "twelve_bit.png", "--run_dir", run_dir)
    assert proc.returncode == 2 and "twelve_bit.png: a 16-bit PNG whose values reach only 4095" in last_line(proc.stderr)
    write_voc(tmp_path / "voc", "a", [("dog", 5, 5, 10, 10)])
    write_voc(tmp_path / "voc", "b", [("cat", 5, 5, 10, 10)])
    proc = run_main(APP, "train", "--run_dir", tmp_path / "r", "--data.source", "voc", "--data.path", tmp_path / "voc",
                    "--data.classes", "dog")
    assert proc.returncode == 2 and "b.xml object 1: unknown class 'cat'; known classes: dog" in last_line(proc.stderr)
    proc = run_main(APP, "train", "--run_dir", tmp_path / "r", "--model.aspect_ratios", "tall")
    assert proc.returncode == 2 and "model.aspect_ratios must be positive numbers" in last_line(proc.stderr)


@pytest.mark.slow
def test_detector_can_overfit_a_few_scenes(tmp_path):
    """The whole chain (targets, loss, decoding, NMS, mAP) agrees: a small detector trained on 16 scenes
    finds their objects again. A sign or offset slip anywhere keeps mAP near zero."""
    flags = ["--data.image_size", "64", "--data.train_scenes", "16", "--data.val_scenes", "0", "--data.test_scenes", "8",
             "--data.flip", "false", "--data.zoom", "0", "--data.color_jitter", "0", "--epochs", "50",
             "--model.width", "24", "--model.fpn_width", "48", "--model.head_width", "48", "--batch_size", "8", "--learning_rate", "0.003", "--schedule", "constant", "--warmup_epochs", "0",
             "--verbose", "line"]
    run_ok(APP, "train", "--run_dir", tmp_path, *flags)
    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.object_detection.app import ObjectDetection

    app = ObjectDetection(load_saved_config(ObjectDetection.Config, tmp_path / "config.json"))
    model = runner.load_trained(app)
    train = app.splits["train"]
    app.splits["test"] = train  # evaluate on the training scenes themselves
    report = app.evaluate(model, tmp_path)
    assert report["map_50"] > 0.8, report


def test_predict_keeps_one_picture_per_input(trained, photos, tmp_path):
    """Issue 11: a/x.jpg and b/x.jpg (and a/x.png) each keep their picture in predictions/."""

    from data.images.files import picture_names

    run_dir, _ = trained
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes((photos / "a.jpg").read_bytes())
    (tmp_path / "a" / "x.png").write_bytes((photos / "b.png").read_bytes())
    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "a" / "x.png"]
    proc = run_ok(APP, "predict", *inputs, "--run_dir", run_dir)
    pictures = [Path(line.split(" -> ")[1]) for line in proc.stdout.splitlines() if " -> " in line]
    assert [p.name for p in pictures] == ["x.png", "x-2.png", "x-3.png"] and all(p.is_file() for p in pictures)
    assert Image.open(pictures[2]).size == (256, 128)  # a/x.png, the wide one (drawn enlarged), not a square x.jpg
    assert picture_names([Path("X.jpg"), Path("b/x.jpg"), Path("x-2.png")]) == ["X.png", "x-2.png", "x-2-2.png"]
