"""The semantic-segmentation app end to end on tiny data: train, evaluate, predict, export; any image size;
the user errors a person can meet."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.semantic_segmentation.app import class_weights
from tests.conftest import last_line, run_main, run_ok

APP = "semantic_segmentation"
TINY = ["--data.train_scenes", "48", "--data.val_scenes", "8", "--data.test_scenes", "8", "--data.scene_size", "64",
        "--data.crop_size", "64", "--epochs", "1", "--batch_size", "8", "--model.width", "4", "--model.depth", "2",
        "--verbose", "line"]


def _png(path, pixels):
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return path


def _mask_folder(root, n=12, size=(40, 56)):
    """images/ + masks/ (binary 0/255): a bright disc on a dark noisy background, its mask the disc."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size[0], :size[1]]
    for i in range(n):
        cy, cx, r = rng.integers(10, size[0] - 10), rng.integers(10, size[1] - 10), rng.integers(5, 10)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image = np.where(disc[..., None], 200, 40) + rng.integers(-20, 20, (*size, 3))
        _png(root / "images" / f"{i:02d}.png", np.clip(image, 0, 255))
        _png(root / "masks" / f"{i:02d}.png", disc * 255)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("seg") / "run"
    run_ok(APP, "train", "--run_dir", run_dir, *TINY)
    return run_dir


def test_train_evaluate_writes_metrics_and_overlays(trained):
    run_ok(APP, "evaluate", "--run_dir", trained)
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert 0 <= metrics["mean_iou"] <= 1 and 0 <= metrics["pixel_accuracy"] <= 1
    assert set(metrics["per_class_iou"]) == {"background", "clothing", "trouser", "footwear", "bag"}
    assert len(list((trained / "eval" / "examples").glob("*.png"))) == 6
    assert (trained / "learning_curves.png").is_file() and (trained / "data" / "splits.json").is_file()


def test_predict_writes_a_mask_at_the_image_size_for_every_input(trained, tmp_path):
    """Any size (not a multiple of the stride) comes back at its own size; a/x.png and b/x.png both kept."""
    rng = np.random.default_rng(1)
    inputs = []
    for folder, size in (("a", (37, 50)), ("b", (64, 23))):
        (tmp_path / folder).mkdir()
        inputs.append(_png(tmp_path / folder / "x.png", rng.integers(0, 255, (*size, 3))))
    proc = run_ok(APP, "predict", *inputs, "--run_dir", trained)
    masks = sorted((trained / "predictions").glob("x*_mask.png"))
    assert [m.name for m in masks] == ["x-2_mask.png", "x_mask.png"]
    assert Image.open(trained / "predictions" / "x_mask.png").size == (50, 37)
    assert Image.open(trained / "predictions" / "x-2_mask.png").size == (23, 64)
    assert Image.open(trained / "predictions" / "x_mask.png").mode == "P"  # ids as palette indices: viewable and exact
    assert (trained / "predictions" / "x_overlay.png").is_file() and str(inputs[0]) in proc.stdout


def test_export_answers_a_batch_of_sizes(trained, tmp_path):
    """`masks` padded to the largest image with 255, `mask_sizes` each image's own, equal to predict's PNG."""
    rng = np.random.default_rng(2)
    small = _png(tmp_path / "small.png", rng.integers(0, 255, (30, 41, 3)))
    large = _png(tmp_path / "large.png", rng.integers(0, 255, (70, 52, 3)))
    run_ok(APP, "export", "--run_dir", trained, "--export_dir", tmp_path / "exports")
    run_ok(APP, "predict", small, large, "--run_dir", trained)
    model = tf.saved_model.load(str(tmp_path / "exports" / "1"))  # in a clean process: test_every_app.py
    images = tf.constant([small.read_bytes(), large.read_bytes()])
    served = model.signatures["serving_default"](images=images)
    probs = model.signatures["probabilities"](images=images)["probabilities"]
    out = {"masks": served["masks"].numpy(), "sizes": served["mask_sizes"].numpy().tolist(),
           "names": [s.decode() for s in served["class_names"].numpy()],
           "probs": list(probs.shape), "sum": float(tf.reduce_sum(probs[0, :30, :41]))}
    masks = np.array(out["masks"], np.uint8)
    assert masks.shape == (2, 70, 52) and out["sizes"] == [[30, 41], [70, 52]]
    assert (masks[0, 30:] == 255).all() and (masks[0, :, 41:] == 255).all()
    assert out["probs"] == [2, 70, 52, 5] and abs(out["sum"] - 30 * 41) < 1e-2
    assert out["names"][0] == "background"
    for i, name in enumerate(("small", "large")):
        predicted = np.asarray(Image.open(trained / "predictions" / f"{name}_mask.png"))
        h, w = out["sizes"][i]
        np.testing.assert_array_equal(masks[i, :h, :w], predicted)


def test_trains_on_an_image_mask_folder_and_evaluates_its_recorded_split(tmp_path):
    data = _mask_folder(tmp_path / "discs")
    run_dir = tmp_path / "run"
    run_ok(APP, "train", "--run_dir", run_dir, "--data.source", "folder", "--data.path", data, "--data.crop_size", "32",
           "--epochs", "2", "--batch_size", "4", "--model.width", "4", "--model.depth", "2", "--verbose", "line")
    record = json.loads((run_dir / "data" / "splits.json").read_text())
    assert sum(len(v) for v in record["members"].values()) == 12
    _png(data / "images" / "99.png", np.zeros((40, 56, 3)))
    _png(data / "masks" / "99.png", np.zeros((40, 56)))
    proc = run_ok(APP, "evaluate", "--run_dir", run_dir)
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert set(metrics["per_class_iou"]) == {"background", "foreground"}
    assert "foreground_iou" in metrics and "pixel_error" in metrics and "adapted_rand_error" in metrics
    assert "1 image(s) under" in proc.stdout and "added since the run's splits" in proc.stdout
    assert metrics["images"] == 2  # the recorded test split, not the new file


def test_collapsed_prediction_is_warned(trained, tmp_path, monkeypatch):
    """A model that predicts (almost) only one class gets the "all black" warning, at evaluate, for five classes as
    for two; a prediction that is one class where the truth is too does not."""
    from apps.semantic_segmentation import app as seg_app

    lines = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    names = ["background", "cells"]
    seg_app._warn_if_collapsed(np.array([[900, 0], [99, 1]]), names)  # foreground 0.10% predicted, 10% true
    seg_app._warn_if_collapsed(np.array([[500, 0], [0, 500]]), names)
    seg_app._warn_if_collapsed(np.array([[995, 0], [5, 0]]), names)  # thin cells, every one missed
    seg_app._warn_if_collapsed(np.array([[996, 1], [1, 2]]), names)  # thin cells, found
    seg_app._warn_if_collapsed(np.array([[1000, 0], [0, 0]]), names)  # nothing to find
    assert len(lines) == 2 and "predicts background for 99.90% of the test pixels (the truth: 90.00%)" in lines[0]
    assert "predicts background for 100.00% of the test pixels (the truth: 99.50%)" in lines[1]
    monkeypatch.undo()

    def all_background(self, model):  # the evaluate path itself, five classes
        return lambda image: tf.one_hot(tf.zeros(tf.shape(image)[:2], tf.int32), len(self.class_names))

    monkeypatch.setattr(seg_app.SemanticSegmentation, "_probabilities", all_background)
    shutil.copytree(trained, tmp_path / "run")
    out = run_ok(APP, "evaluate", "--run_dir", tmp_path / "run").stdout
    assert "warning: the model predicts background for 100.00% of the test pixels" in out


def test_class_weights_balanced_and_listed():
    masks = [np.array([[0, 0, 0, 1], [0, 0, 255, 1]], np.uint8)]  # background 5 pixels, class 1 2 pixels, class 2 none
    weights = class_weights("balanced", masks, 3)
    freq = np.array([5, 2]) / 7
    np.testing.assert_allclose(weights[:2], np.median(freq) / freq)
    assert weights[2] == max(weights[:2])
    assert class_weights("1,2.5,0", masks, 3) == [1.0, 2.5, 0.0] and class_weights(None, masks, 3) is None


@pytest.mark.parametrize("value, message", [
    ("1,2", "--class_weights needs 5 finite weights >= 0"),
    ("1,x,1,1,1", "--class_weights must be 'balanced' or 5 comma-separated numbers"),
    ("1,1,1,1,1 --loss dice", "--loss dice with --class_weights: class weights apply to the cross-entropy"),
])
def test_bad_class_weights_are_one_line(tmp_path, value, message):
    value, *more = value.split()
    proc = run_main(APP, "train", "--run_dir", tmp_path, *TINY, "--class_weights", value, *more)
    assert proc.returncode != 0 and message in last_line(proc.stderr) and "Traceback" not in proc.stderr


def test_max_side_trains_on_shrunk_images_and_answers_at_each_inputs_size(tmp_path):
    """--data.max_side 32 on 40x56 photos: the network sees them 23x32 in training, evaluate, predict and the
    export alike, and predict and the export return masks at the input's own size, the same ones."""
    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.semantic_segmentation.app import SemanticSegmentation
    from apps.semantic_segmentation.serving import image_probabilities

    data = _mask_folder(tmp_path / "discs")
    run_dir = tmp_path / "run"
    run_ok(APP, "train", "--run_dir", run_dir, "--data.source", "folder", "--data.path", data, "--data.crop_size", "32",
           "--data.max_side", "32", "--epochs", "1", "--batch_size", "4", "--model.width", "4", "--model.depth", "2",
           "--verbose", "line")
    app = SemanticSegmentation(load_saved_config(SemanticSegmentation.Config, run_dir / "config.json"), run_dir)
    assert {i.shape for i in app.splits["train"].images} == {(23, 32, 3)}
    model = runner.load_trained(app)
    image = tf.constant(np.asarray(Image.open(data / "images" / "03.png")), tf.float32)
    shrunk = tf.cast(tf.cast(tf.clip_by_value(tf.round(tf.image.resize(image, (23, 32), antialias=True)), 0, 255),
                             tf.uint8), tf.float32)
    expected = tf.image.resize(image_probabilities(model, shrunk, app.stride), (40, 56))
    np.testing.assert_allclose(image_probabilities(model, image, app.stride, max_side=32).numpy(), expected.numpy(),
                               atol=1e-5)
    np.testing.assert_array_equal(image_probabilities(model, shrunk, app.stride, max_side=32).numpy(),
                                  image_probabilities(model, shrunk, app.stride).numpy())  # fits: untouched
    run_ok(APP, "predict", data / "images" / "03.png", "--run_dir", run_dir)
    predicted = np.asarray(Image.open(run_dir / "predictions" / "03_mask.png"))
    assert predicted.shape == (40, 56)
    run_ok(APP, "export", "--run_dir", run_dir, "--export_dir", tmp_path / "exports")
    served = tf.saved_model.load(str(tmp_path / "exports" / "1")).signatures["serving_default"](
        images=tf.constant([(data / "images" / "03.png").read_bytes()]))
    assert served["mask_sizes"].numpy().tolist() == [[40, 56]]
    np.testing.assert_array_equal(served["masks"].numpy()[0], predicted)


def test_folder_with_a_mask_of_another_size_names_both_files(tmp_path):
    data = _mask_folder(tmp_path / "discs", n=4)
    _png(data / "masks" / "02.png", np.zeros((10, 10)))
    proc = run_main(APP, "train", "--run_dir", tmp_path / "run", "--data.source", "folder", "--data.path", data,
                    "--data.crop_size", "32", "--verbose", "line")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "02.png" in last_line(proc.stderr) and "images" in last_line(proc.stderr)


def test_tta_maps_each_view_back_to_its_pixels():
    """A per-pixel network gives every dihedral view the same answer at each pixel, so test-time augmentation must
    return the plain probabilities exactly when each of the 8 views is turned back right (a wrong inverse
    rotation keeps the shape of a non-square image but moves its pixels)."""
    import keras

    from apps.semantic_segmentation.serving import image_probabilities

    keras.utils.set_random_seed(0)
    per_pixel = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 1)])
    image = tf.random.uniform((21, 30, 3), 0, 255, seed=2)
    plain = image_probabilities(per_pixel, image, 8)
    np.testing.assert_allclose(image_probabilities(per_pixel, image, 8, tta=True).numpy(), plain.numpy(), atol=1e-5)


def test_serving_probabilities_match_the_model_on_a_padded_image(trained):
    """image_probabilities pads to the stride and crops back: the map is the model's on the padded image."""
    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.semantic_segmentation.app import SemanticSegmentation
    from apps.semantic_segmentation.serving import image_probabilities

    app = SemanticSegmentation(load_saved_config(SemanticSegmentation.Config, trained / "config.json"), trained)
    model = runner.load_trained(app)
    image = tf.random.uniform((21, 30, 3), 0, 255, seed=1)
    probabilities = image_probabilities(model, image, app.stride)
    padded = tf.pad(image, [[0, 3], [0, 2], [0, 0]])[None]
    expected = tf.nn.softmax(model(padded, training=False)[0, :21, :30], axis=-1)
    np.testing.assert_allclose(probabilities.numpy(), expected.numpy(), atol=1e-5)
    tta = image_probabilities(model, image, app.stride, tta=True)
    assert tta.shape == (21, 30, 5)
    np.testing.assert_allclose(tf.reduce_sum(tta, -1).numpy(), 1.0, atol=1e-5)
