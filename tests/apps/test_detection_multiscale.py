"""--data.multi_scale in the detection app: each training batch is encoded with its side's anchors, the model
takes any side and still evaluates and exports at data.image_size; backbones and YOLO that cannot are refused."""
import json

import pytest
import tensorflow as tf

from apps.core import runner
from apps.core.config import apply_overrides
from apps.core.errors import UserError
from apps.object_detection.app import ObjectDetection

TINY = {"data.image_size": "64", "data.multi_scale": "0.5", "data.train_scenes": "48", "data.val_scenes": "8",
        "data.test_scenes": "8", "epochs": "1", "batch_size": "8", "model.width": "8", "model.fpn_width": "8",
        "model.head_width": "8", "model.head_depth": "1", "score_threshold": "0.001", "verbose": "line"}


def _app(tmp_path, **flags):
    return ObjectDetection(apply_overrides(ObjectDetection.Config(), {"run_dir": str(tmp_path / "run"), **TINY, **flags}))


def test_batches_of_every_side_are_encoded_with_that_sides_anchors(tmp_path):
    app = _app(tmp_path)
    assert app.train_sides == [32, 64, 96]
    seen = set()
    for images, targets in app.build_dataset("train"):
        side = images.shape[1]
        seen.add(side)
        assert targets.shape[:2] == (8, app.coder_for(side).num_predictions)
        assert (targets.numpy()[..., -1] >= 0).any(axis=1).all()  # every scene's digits have positive anchors
    assert len(seen) > 1
    model = app.build_model()
    assert model.input_shape[1:3] == (None, None)
    for side in app.train_sides:
        assert model(tf.zeros((1, side, side, 3))).shape[1] == app.coder_for(side).num_predictions


def _drawn_sides(monkeypatch):
    """The canvas side of every training batch the runs below are fed, in order (recorded as fit reads it)."""
    drawn = []
    build_dataset = ObjectDetection.build_dataset

    def recording(self, split, epoch=0):
        data = build_dataset(self, split, epoch)
        if split != "train":
            return data

        def record(images, targets):
            side = tf.py_function(lambda s: drawn.append(int(s)) or s, [tf.shape(images)[1]], tf.int32)
            with tf.control_dependencies([side]):
                return tf.identity(images), targets
        return data.map(record)

    monkeypatch.setattr(ObjectDetection, "build_dataset", recording)
    return drawn


def test_a_multi_scale_run_trains_evaluates_exports_and_resumes_multi_scale(tmp_path, capsys, monkeypatch):
    """...and evaluating it at another data.image_size than its own is one line."""
    drawn = _drawn_sides(monkeypatch)
    app = _app(tmp_path, **{"data.train_scenes": "16"})
    model = runner.train(app)
    assert len(set(drawn)) >= 2 and set(drawn) <= set(app.train_sides), drawn  # batches of several sides
    report = app.evaluate(model, tmp_path)
    assert 0.0 <= report["map_50"] <= 1.0
    serving = app.serving_model(model)
    image = tf.io.encode_png(tf.zeros((50, 70, 3), tf.uint8))
    out = serving.serve(tf.stack([image]))
    assert out["boxes"].shape == (1, 100, 4)
    run = tmp_path / "run"
    assert json.loads((run / "state.json").read_text())["multi_scale"] == 0.5
    other = _app(tmp_path, **{"data.image_size": "96", "data.train_scenes": "16"})  # at another size than the run's
    with pytest.raises(UserError, match="data.image_size is 96 but the model takes 64"):
        other.evaluate(runner.load_trained(other), tmp_path)
    capsys.readouterr()
    flags = {k: v for k, v in TINY.items() if k != "data.multi_scale"}
    extended = ObjectDetection(apply_overrides(ObjectDetection.Config(), {"run_dir": str(run), **flags, "epochs": "2",
                                                                          "data.train_scenes": "16"}))
    drawn.clear()
    model = runner.train(extended)
    assert "note: the run's data.multi_scale 0.5 is kept (--data.multi_scale to change it)" in capsys.readouterr().out
    assert extended.train_sides == [32, 64, 96] and model.input_shape[1:3] == (None, None)
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2


def test_a_backbone_whose_maps_do_not_halve_exactly_is_refused(tmp_path):
    app = _app(tmp_path, **{"model.backbone": "squeezenet", "data.image_size": "128", "data.multi_scale": "0.25"})
    app.build_dataset("train")
    with pytest.raises(UserError, match="backbone squeezenet's feature maps do not halve exactly .* data.multi_scale 0"):
        app.build_model()


def test_yolo_with_multi_scale_is_refused(tmp_path):
    with pytest.raises(UserError, match="'data.multi_scale' applies to model.arch retinanet"):
        _app(tmp_path, **{"model.arch": "yolo"})
