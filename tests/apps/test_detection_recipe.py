"""The detection recipe set by the data: backbone, canvas and mosaic share by source, epochs and frozen phase by size."""
import json

import pytest

from apps.core import runner
from apps.core.config import apply_overrides
from apps.object_detection import recipe
from apps.object_detection.app import ObjectDetection
from tests.data.boxes.test_sources import write_voc


def _app(tmp_path, **flags):
    return ObjectDetection(apply_overrides(ObjectDetection.Config(), {"run_dir": str(tmp_path / "run"), **flags}))


def test_scenes_train_the_zoo_resnet_from_scratch_and_photos_a_pretrained_backbone(tmp_path):
    scenes = _app(tmp_path).config
    assert (scenes.model.backbone, scenes.model.weights, scenes.data.image_size) == ("resnet", None, 128)
    photos = _app(tmp_path, **{"data.source": "voc", "data.path": str(tmp_path)}).config
    assert (photos.model.backbone, photos.model.weights, photos.data.image_size) == ("efficientnet_lite0", "imagenet", 256)
    chosen = _app(tmp_path, **{"data.source": "voc", "data.path": str(tmp_path), "model.backbone": "squeezenet",
                              "data.image_size": "320"}).config
    assert (chosen.model.backbone, chosen.model.weights, chosen.data.image_size) == ("squeezenet", None, 320)
    yolo = _app(tmp_path, **{"data.source": "voc", "data.path": str(tmp_path), "model.arch": "yolo"}).config
    assert yolo.model.weights is None  # YOLO's weights are darknet's, never the ImageNet backbone's


def test_half_the_photo_canvases_are_mosaics_and_none_of_the_scenes_unless_set(tmp_path):
    assert _app(tmp_path).config.data.mosaic == 0.0
    voc = {"data.source": "voc", "data.path": str(tmp_path)}
    assert _app(tmp_path, **voc).config.data.mosaic == recipe.PHOTO_MOSAIC == 0.5
    assert _app(tmp_path, **voc, **{"data.mosaic": "0"}).config.data.mosaic == 0.0
    assert _app(tmp_path, **{"data.mosaic": "0.25"}).config.data.mosaic == 0.25


@pytest.mark.parametrize("images, epochs", [(4000, 12), (20000, 12), (1000, 48), (160, 100), (10, 100)])
def test_epochs_show_about_48000_images_within_12_to_100(images, epochs):
    assert recipe.auto_epochs(images) == epochs


def test_the_frozen_phase_is_a_tenth_with_pretrained_weights_and_set_values_stay(tmp_path):
    cfg = _app(tmp_path, **{"data.source": "voc", "data.path": str(tmp_path)}).config
    resolved, said = recipe.size_defaults(cfg, 144)
    assert (resolved.epochs, resolved.model.freeze_epochs) == (100, 10)
    assert said == ("recipe: 100 epochs for 144 training images (--epochs to choose), the first 10 on the frozen "
                    "backbone (--model.freeze_epochs)")
    scratch, _ = recipe.size_defaults(_app(tmp_path).config, 4000)
    assert (scratch.epochs, scratch.model.freeze_epochs) == (12, 0)
    kept, said = recipe.size_defaults(apply_overrides(cfg, {"epochs": "7", "model.freeze_epochs": "2"}), 144)
    assert (kept.epochs, kept.model.freeze_epochs, said) == (7, 2, None)


def test_the_runner_trains_the_epochs_the_data_chose_and_records_them(tmp_path, monkeypatch, capsys):
    for i in range(10):
        write_voc(tmp_path / "voc", f"im{i}", [("dog", 5, 5, 30, 25)], size=(40, 40))
    monkeypatch.setattr(recipe, "EPOCH_IMAGES", 12)  # 8 training images: 2 epochs
    monkeypatch.setattr(recipe, "EPOCH_RANGE", (1, 3))
    flags = {"data.source": "voc", "data.path": str(tmp_path / "voc"), "data.val_fraction": "0",
             "data.test_fraction": "0.2", "model.backbone": "resnet", "model.width": "8",
             "model.fpn_width": "16", "model.head_width": "16", "model.head_depth": "1",
             "data.image_size": "64", "batch_size": "4", "verbose": "line"}
    app = _app(tmp_path, **flags)
    runner.train(app)
    out = capsys.readouterr().out
    assert "recipe: 2 epochs for 8 training images" in out
    assert "recipe: 0.5 of the training canvases mosaics of four (--data.mosaic to choose)" in out
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2
    state = json.loads((run / "state.json").read_text())
    assert state["mosaic"] == 0.5
    del state["mosaic"]  # a run from before the recipe chose mosaics trained without them, and goes on so
    (run / "state.json").write_text(json.dumps(state))
    extended = _app(tmp_path, **{**flags, "epochs": "3"})
    runner.train(extended)
    assert "note: the run's data.mosaic 0 is kept (--data.mosaic to change it)" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["data"]["mosaic"] == 0.0
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3
