"""The style-transfer app end to end on tiny settings: the photo pipeline (seeded, stateless epochs, held-out
photos), a Johnson net and an AdaIN model trained through the runner, evaluate (losses, overlap, sheet),
predict with the trained model and with Gatys' optimisation (which resumes in its own folder), the exports
(PNG bytes at the input's size; AdaIN with styles and strength), and the user errors a person can meet."""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.style_transfer.app import StyleTransfer
from data.errors import DataError
from data.split_record import read_record
from data.style.pipeline import (StyleDataConfig, load_photo_split, load_photos, load_styles, split_photos, split_record,
                                 train_epoch, val_batches)
from tests.conftest import ROOT, last_line, run_cli, run_cli_calls, run_main, run_ok

APP = "style_transfer"
TINY = ["--model.width", "4", "--model.residual_blocks", "1", "--data.image_size", "48", "--data.crops_per_epoch", "8",
        "--epochs", "1", "--batch_size", "4", "--verbose", "line"]
GATYS = ["--gatys.steps", "3", "--gatys.image_size", "48", "--gatys.save_every", "0"]


def _photo(path, size=(40, 56), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[0], 0:size[1]]
    image = np.stack([x * 4 % 256, y * 5 % 256, (x + y) * 3 % 256], -1) + rng.integers(0, 30, (*size, 3))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


def _png_size(data):
    return Image.open(io.BytesIO(data)).size


def test_photo_pipeline_is_seeded_and_holds_photos_out(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for k in range(9):
        _photo(folder / ("sub" if k % 2 else "") / f"p{k}.png", (30 + k, 50), seed=k)
    cfg = StyleDataConfig(content=str(folder), image_size=32, crops_per_epoch=10, held_out=0.2)
    split = split_photos(cfg, seed=3)
    assert len(split["val"]) == 2 and len(split["train"]) == 7 and not set(split["val"]) & set(split["train"])
    assert split == split_photos(cfg, seed=3) and split != split_photos(cfg, seed=4)
    photos = load_photos(split["train"], cfg)
    assert min(photos.sizes.min(axis=1)) == 48  # held with the short side at 1.5 x image_size
    first = [x.numpy() for x, _ in train_epoch(photos, cfg, 4, seed=1, epoch=2)]
    again = [x.numpy() for x, _ in train_epoch(photos, cfg, 4, seed=1, epoch=2)]
    other = [x.numpy() for x, _ in train_epoch(photos, cfg, 4, seed=1, epoch=3)]
    assert len(first) == 2 and first[0].shape == (4, 32, 32, 3)  # 10 crops: two full batches
    assert all(np.array_equal(a, b) for a, b in zip(first, again)) and not np.array_equal(first[0], other[0])
    assert 0 <= first[0].min() and first[0].max() <= 255
    x, y = next(iter(val_batches(load_photos(split["val"], cfg), cfg, 4)))
    assert x.shape == (4, 32, 32, 3) and np.array_equal(x, y)  # whole batches: the 2 photos twice
    assert np.array_equal(x[:2], x[2:]) and not np.array_equal(x[0], x[1])
    styles = load_styles(cfg)  # the embedded paintings
    batch = next(iter(train_epoch(photos, cfg, 4, seed=1, epoch=0, styles=styles)))
    assert {k: tuple(v.shape) for k, v in batch.items()} == {"content": (4, 32, 32, 3), "style": (4, 32, 32, 3),
                                                              "strength": (4,)}


def test_photos_beyond_memory_are_read_from_their_files_into_the_same_crops(tmp_path, monkeypatch, capsys):
    """A folder of photos too large to hold decoded (COCO's 80,000, as Johnson et al. trained) is read from its
    files for each crop: the crops are those of the photos held in memory, for the content and AdaIN's styles."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(5):
        _photo(folder / f"p{k}.png", (40 + 7 * k, 100 - 9 * k), seed=k)  # landscape, portrait, a panorama
    cfg = StyleDataConfig(content=str(folder), styles=str(folder), image_size=16, crops_per_epoch=8, held_out=0.4)
    split = split_photos(cfg, seed=0)

    def batches():
        photos, val = load_photos(split["train"], cfg), load_photos(split["val"], cfg)
        return ([b.numpy() for b, _ in train_epoch(photos, cfg, 4, seed=1, epoch=1)],
                [b["style"].numpy() for b in train_epoch(photos, cfg, 4, seed=1, epoch=1, styles=load_styles(cfg))],
                [x.numpy() for x, _ in val_batches(val, cfg, 4)], photos.images)
    held = batches()
    assert held[-1] is not None and "read from their files" not in capsys.readouterr().out
    monkeypatch.setattr("data.style.pipeline.HELD_BYTES", 1000)
    streamed = batches()
    assert streamed[-1] is None and "3 content images: read from their files for each crop" in capsys.readouterr().out
    for mine, theirs, count in zip(held, streamed, (2, 2, 1)):  # 8 crops in batches of 4; 2 held-out photos
        assert len(mine) == len(theirs) == count and all(np.array_equal(a, b) for a, b in zip(mine, theirs))


def test_photo_errors_name_the_file_and_the_folder(tmp_path):
    with pytest.raises(DataError, match="content not found: .*nowhere"):
        split_photos(StyleDataConfig(content=str(tmp_path / "nowhere")), 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="content folder .*empty holds no"):
        split_photos(StyleDataConfig(content=str(tmp_path / "empty")), 0)
    _photo(tmp_path / "hidden" / ".ipynb_checkpoints" / "copy.png")  # what hidden folders hold is not the user's
    with pytest.raises(DataError, match="content folder .*hidden holds no"):
        split_photos(StyleDataConfig(content=str(tmp_path / "hidden")), 0)
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    cfg = StyleDataConfig(content=str(folder), held_out=0.0, image_size=32)
    with pytest.raises(DataError, match="broken.jpg"):
        load_photos(split_photos(cfg, 0)["train"], cfg)
    cfg.skip_bad_files = True
    assert len(load_photos(split_photos(cfg, 0)["train"], cfg).paths) == 1


@pytest.fixture(scope="module")
def johnson(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("style") / "johnson"
    run_ok(APP, "train", "--run_dir", run_dir, *TINY, "--style", "scream")
    return run_dir


def test_johnson_evaluate_predict_and_export(johnson, tmp_path, monkeypatch):
    state = json.loads((johnson / "state.json").read_text())
    assert state["arch"] == "johnson" and state["style"] == "scream" and len(state["held_out_photos"]) == 1
    record = read_record(johnson / "data" / "splits.json")  # the embedded photos recorded by name
    assert [m["path"] for m in record["members"]["val"]] == [Path(state["held_out_photos"][0]).stem]
    assert {m["path"] for split in record["members"].values() for m in split} == {"dog", "horses", "person"}
    run_ok(APP, "evaluate", "--run_dir", johnson)
    metrics = json.loads((johnson / "eval" / "metrics.json").read_text())
    assert metrics["photos"] == 1 and metrics["held_out"] is True
    assert metrics["loss"] > 0 and metrics["style"] > 0 and metrics["overlap_difference"] >= 0
    assert (johnson / "eval" / "sheet.png").stat().st_size > 1000
    photo = _photo(tmp_path / "odd.png", (37, 51))  # not a multiple of the stride: padded, cropped back
    built = []
    monkeypatch.setattr(StyleTransfer, "stylizer", lambda self, model, made=StyleTransfer.stylizer: built.append(1)
                        or made(self, model))
    out = run_ok(APP, "predict", str(photo), str(_photo(tmp_path / "tiny.png", (3, 5))), "--run_dir", johnson).stdout
    assert "method: model" in out and "37x51 stylised (model)" in out and "3x5 stylised (model)" in out
    assert built == [1]  # one traced network for the folder, not one per photo
    assert Image.open(johnson / "predictions" / "odd_scream_stylized.png").size == (51, 37)
    assert (johnson / "predictions" / "odd_scream_sheet.png").is_file()
    run_ok(APP, "export", "--run_dir", johnson, "--export_dir", tmp_path / "exports")
    serve = tf.saved_model.load(str(tmp_path / "exports" / "1")).signatures["serving_default"]
    images = [photo.read_bytes(), _photo(tmp_path / "b.png", (20, 9)).read_bytes()]
    stylized = serve(images=tf.constant(images))["stylized"].numpy()
    assert [_png_size(s) for s in stylized] == [(51, 37), (9, 20)]


def test_evaluate_skips_a_photo_that_training_skipped(johnson, tmp_path):
    """--data.skip_bad_files: the held-out photos recorded with the run include the unreadable one."""
    run = tmp_path / "run"
    shutil.copytree(johnson, run)
    record = json.loads((run / "data" / "splits.json").read_text())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    record["members"]["val"].append({"path": str(tmp_path / "broken.jpg")})  # an absolute path: as a file's
    (run / "data" / "splits.json").write_text(json.dumps(record))
    code, _, err = run_main(APP, "evaluate", "--run_dir", run)
    assert code == 2 and "broken.jpg" in last_line(err)
    out = run_ok(APP, "evaluate", "--run_dir", run, "--data.skip_bad_files", "true").stdout
    assert "note: skipped 1 unreadable photo(s) (--data.skip_bad_files), e.g. " in out
    assert json.loads((run / "eval" / "metrics.json").read_text())["photos"] == 1


def test_a_run_without_split_record_is_evaluated_on_the_photos_its_state_lists(johnson, tmp_path):
    """Runs from before the split record: their state.json's held-out photos, not a fresh split of today's folder
    (which could hold photos the run trained on). A thumbnail is left out (the loss network's pools need pixels)."""
    run = tmp_path / "run"
    shutil.copytree(johnson, run)
    (run / "data" / "splits.json").unlink()
    state = json.loads((run / "state.json").read_text())
    state["held_out_photos"] = [str(_photo(tmp_path / f"{n}.png", (96, 128))) for n in ("a", "b")]
    (run / "state.json").write_text(json.dumps(state))
    out = run_ok(APP, "evaluate", "--run_dir", run).stdout
    assert "measured on the 2 held-out photo(s) its state.json lists" in out
    assert json.loads((run / "eval" / "metrics.json").read_text())["photos"] == 2
    state["held_out_photos"] += [str(_photo(tmp_path / "thumb.png", (24, 32))), str(tmp_path / "gone.png")]
    (run / "state.json").write_text(json.dumps(state))
    out = run_ok(APP, "evaluate", "--run_dir", run).stdout
    assert f"measured on the 3 held-out photo(s) its state.json lists (1 of 4 gone, e.g. {tmp_path / 'gone.png'})" in out
    assert "note: left out 1 photo(s) under 32 pixels on a side at the 512-pixel evaluation size, too small " in out
    assert json.loads((run / "eval" / "metrics.json").read_text())["photos"] == 2
    state["held_out_photos"] = state["held_out_photos"][-2:-1]
    (run / "state.json").write_text(json.dumps(state))
    code, _, err = run_main(APP, "evaluate", "--run_dir", run)
    assert code == 2 and "is 32 pixels on a side or more at 512 pixels, e.g. " in last_line(err) and "Traceback" not in err


def test_a_trained_network_predicts_without_its_style_file(johnson, tmp_path):
    """A Johnson run copied to another machine, its painting left behind: the network holds the style, so
    predict still paints, draws the sheet without the style panel and says so in one line."""
    run = tmp_path / "run"
    shutil.copytree(johnson, run)
    gone = tmp_path / "elsewhere" / "painting.jpg"  # the style file it was trained on, absent here
    for name in ("state.json", "config.json"):
        saved = json.loads((run / name).read_text())
        saved["style"] = str(gone)
        (run / name).write_text(json.dumps(saved))
    photo = _photo(tmp_path / "p.png", (30, 40))
    out = run_ok(APP, "predict", str(photo), "--run_dir", run).stdout
    assert "30x40 stylised (model)" in out
    notes = [line for line in out.splitlines() if str(gone) in line]
    assert len(notes) == 1 and "not found" in notes[0] and "without" in notes[0], out
    assert Image.open(run / "predictions" / "p_painting_stylized.png").size == (40, 30)
    assert Image.open(run / "predictions" / "p_painting_sheet.png").size[0] == 600  # two panels of 300 px, not three
    code, _, err = run_main(APP, "predict", str(photo), "--run_dir", run, "--method", "gatys")
    assert code == 2 and "style image not found" in last_line(err)  # gatys needs the painting itself


def test_the_content_split_is_recorded_and_read_back(tmp_path, capsys):
    """The split made at the first training is the run's: photos added later do not move it (they are counted
    and left out), the folder can move and be named again, gone photos are reported, other flags refused."""
    folder = tmp_path / "photos"
    for k in range(6):
        _photo(folder / ("sub" if k % 2 else "") / f"p{k}.png", seed=k)
    cfg = StyleDataConfig(content=str(folder), held_out=0.34)
    split = load_photo_split(cfg, 0)
    record = split_record(cfg, 0, split)
    assert record["members"] == {name: [{"path": p.relative_to(folder).as_posix()} for p in split[name]]
                                 for name in ("train", "val")} and len(split["val"]) == 2
    for k in range(6, 12):
        _photo(folder / f"p{k}.png", seed=k)
    assert split_photos(cfg, 0) != split  # a fresh split of the folder moves: held-out photos would be trained on
    capsys.readouterr()
    assert load_photo_split(cfg, 0, record) == split
    assert "6 photo(s) under" in capsys.readouterr().out
    moved = tmp_path / "moved"
    shutil.move(folder, moved)
    again = load_photo_split(StyleDataConfig(content=str(moved), held_out=0.34), 0, record)
    assert again == {name: [moved / p.relative_to(folder) for p in split[name]] for name in split}
    again["val"][0].unlink()
    with pytest.warns(UserWarning, match="1 of the 2 files of the run's val split are gone"):
        assert load_photo_split(StyleDataConfig(content=str(moved), held_out=0.34), 0, record)["val"] == again["val"][1:]
    again["val"][1].unlink()
    with pytest.raises(DataError, match="val .*gone .*--data.content"):
        load_photo_split(StyleDataConfig(content=str(moved), held_out=0.34), 0, record)
    with pytest.raises(DataError, match="held_out 0.34 -> 0.5"):
        load_photo_split(StyleDataConfig(content=str(moved), held_out=0.5), 0, record)
    one = _photo(tmp_path / "one.png")  # a single file: its resolved path; the embedded photos: their names
    assert split_record(StyleDataConfig(content=str(one)), 0, load_photo_split(StyleDataConfig(content=str(one)), 0))[
        "members"] == {"train": [{"path": str(one.resolve())}], "val": []}


def test_resume_keeps_the_split_and_evaluate_runs_from_another_folder(tmp_path):
    """Photos added to --data.content before a resume are not trained on, and evaluate measures exactly the
    held-out photos from any working directory (the folder named again with --data.content)."""
    folder = tmp_path / "photos"
    for k in range(4):
        _photo(folder / f"p{k}.png", seed=k)
    run = tmp_path / "run"
    run_ok(APP, "train", "--run_dir", run, *TINY, "--data.content", "photos", "--data.held_out", "0.25", cwd=tmp_path)
    held = json.loads((run / "state.json").read_text())["held_out_photos"]
    first = (run / "data" / "splits.json").read_text()
    for k in range(4, 9):
        _photo(folder / f"p{k}.png", seed=k)
    out = run_ok(APP, "train", "--run_dir", run, *TINY, "--epochs", "2", "--data.content", "photos",
                 "--data.held_out", "0.25", cwd=tmp_path).stdout
    assert json.loads((run / "state.json").read_text())["held_out_photos"] == held  # not trained on since
    assert "resuming" in out and "5 photo(s) under photos added since the run's splits were recorded are ignored" in out
    assert (run / "data" / "splits.json").read_text() == first
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, err = run_main(APP, "evaluate", "--run_dir", run, cwd=elsewhere)  # the run's relative 'photos'
    assert code == 2 and "content not found: photos" in last_line(err)
    run_ok(APP, "evaluate", "--run_dir", run, "--data.content", str(folder), cwd=elsewhere)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["held_out"] is True and metrics["photos"] == 1


def test_adain_under_two_mirrored_replicas_takes_the_single_device_steps(tmp_path):
    """AdaIN's own train_step divides each replica's loss by the replicas (their gradients are summed): two
    replicas on two logical CPUs, plain SGD (whose step, unlike Adam's, scales with the gradient), end where one
    device does; without the division each step would be twice as long. A run at learning rate 0 gives the
    weights both started from (the same seed)."""
    import keras

    runs = (("single", "default", "1e-6"), ("mirrored", "mirrored", "1e-6"), ("start", "default", "0"))
    run_cli_calls(*([APP, "train", "--run_dir", tmp_path / name, *TINY, "--model.arch", "adain", "--optimizer", "sgd",
                     "--learning_rate", rate, "--deterministic", "--strategy", strategy, "--cpu_devices", "2"]
                    for name, strategy, rate in runs))  # one process: a TensorFlow start costs seconds
    decoders = {}
    for name, _, _ in runs:
        model = keras.saving.load_model(tmp_path / name / "model.keras", compile=False)
        decoders[name] = [w.numpy() for w in model.get_layer("decoder").weights]
    moved = max(float(np.abs(a - b).max()) for a, b in zip(decoders["single"], decoders["start"]))
    apart = max(float(np.abs(a - b).max()) for a, b in zip(decoders["single"], decoders["mirrored"]))
    assert moved > 1e-4 and apart < 0.05 * moved, (moved, apart)


def test_adain_trains_the_decoder_and_exports_styles_and_strength(tmp_path):
    run_dir = tmp_path / "adain"
    run_ok(APP, "train", "--run_dir", run_dir, *TINY, "--model.arch", "adain")
    assert "val_loss" in (run_dir / "history.csv").read_text().splitlines()[0]
    run_ok(APP, "evaluate", "--run_dir", run_dir)
    assert json.loads((run_dir / "eval" / "metrics.json").read_text())["photos"] == 1
    photo = _photo(tmp_path / "p.png", (33, 41))
    style_path = _photo(tmp_path / "s.png", (64, 90), seed=5)
    out = run_ok(APP, "predict", str(photo), "--run_dir", run_dir, "--style", str(style_path), "--strength", "0.5").stdout
    assert "33x41 stylised (model)" in out
    run_ok(APP, "export", "--run_dir", run_dir, "--export_dir", tmp_path / "exports")
    serve = tf.saved_model.load(str(tmp_path / "exports" / "1")).signatures["serving_default"]
    style = style_path.read_bytes()
    served = serve(images=tf.constant([photo.read_bytes()]), styles=tf.constant([style]), strength=tf.constant(0.5))
    predicted = np.asarray(Image.open(run_dir / "predictions" / "p_s_stylized.png"), np.int16)
    assert np.abs(np.asarray(Image.open(io.BytesIO(served["stylized"].numpy()[0])), np.int16) - predicted).max() <= 1
    images = tf.constant([photo.read_bytes(), photo.read_bytes()])
    weak, strong = serve(images=images, styles=tf.constant([style]), strength=tf.constant([0.0, 1.0]))["stylized"].numpy()
    assert _png_size(weak) == _png_size(strong) == (41, 33)
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(weak))), np.asarray(Image.open(io.BytesIO(strong))))
    with pytest.raises(tf.errors.InvalidArgumentError, match="strength must lie in 0..1"):
        serve(images=images, styles=tf.constant([style]), strength=tf.constant([2.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="styles must hold one entry, or one per image"):
        serve(images=images, styles=tf.constant([style] * 3), strength=tf.constant([1.0]))
    one = serve(images=images, styles=tf.constant([style]), strength=tf.constant(1.0))["stylized"].numpy()  # a scalar
    assert one.tolist() == [strong, strong]
    tiny = _photo(tmp_path / "tiny.png", (5, 3)).read_bytes()  # padded up for the encoder's pools, cropped back
    assert _png_size(serve(images=tf.constant([tiny]), styles=tf.constant([tiny]), strength=tf.constant(1.0))[
        "stylized"].numpy()[0]) == (3, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`strength` must be one number, or a 1-D batch"):
        serve(images=images, styles=tf.constant([style]), strength=tf.constant([[1.0]]))
    # A 20:1 banner keeps its centre 16:1 part, 12 pixels high at a crop's area, under the encoder's smallest side
    # (15): predict and the export both crop it and enlarge it to that side, to the same pixels.
    banner = _photo(tmp_path / "banner.png", (12, 240), seed=6)
    run_ok(APP, "predict", str(photo), "--run_dir", run_dir, "--style", str(banner))
    served = serve(images=tf.constant([photo.read_bytes()]), styles=tf.constant([banner.read_bytes()]),
                   strength=tf.constant(1.0))["stylized"].numpy()[0]
    predicted = np.asarray(Image.open(run_dir / "predictions" / "p_banner_stylized.png"), np.int16)
    assert np.abs(np.asarray(Image.open(io.BytesIO(served)), np.int16) - predicted).max() <= 1


def test_a_long_narrow_style_trains_a_network_at_the_smallest_crops(tmp_path):
    """At --data.image_size 32 (the smallest allowed) a non-square style at a crop's area has a side under
    SqueezeNet's smallest input (31): it is enlarged to it, where TensorFlow failed inside the pooling."""
    from apps.style_transfer.config import StyleConfig

    banner = _photo(tmp_path / "banner.png", (30, 90), seed=7)  # 18x55 at a 32x32 crop's area
    app = StyleTransfer(StyleConfig(style=str(banner), data=StyleDataConfig(image_size=32)), tmp_path / "run")
    loss = app.compile_defaults()["loss"]  # the style's Gram matrices are computed here: TensorFlow failed before
    assert all(np.isfinite(g).all() for g in loss.style_grams.values())


def test_predict_without_a_model_optimises_pixels_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    photo = _photo(tmp_path / "photo.png", (36, 48))
    out = run_ok(APP, "predict", str(photo), "--run_dir", run_dir, "--style", "scream", *GATYS).stdout
    assert "method: gatys" in out and "36x48 stylised (gatys)" in out
    folders = list((run_dir / "predictions" / "gatys").iterdir())
    assert len(folders) == 1 and (folders[0] / "checkpoints" / "state.npz").is_file()
    assert (folders[0] / "losses.png").is_file() and (run_dir / "predictions" / "photo_scream_sheet.png").is_file()
    history = (folders[0] / "history.csv").read_text().splitlines()
    assert history[0] == "step,loss,content,style,tv" and len(history) == 1 + int(GATYS[GATYS.index("--gatys.steps") + 1])
    first = np.asarray(Image.open(run_dir / "predictions" / "photo_scream_stylized.png"))
    # The same command finds its finished run; more steps continue it; another style starts its own folder.
    run_ok(APP, "predict", str(photo), "--run_dir", run_dir, "--style", "scream", *GATYS)
    assert np.array_equal(first, np.asarray(Image.open(run_dir / "predictions" / "photo_scream_stylized.png")))
    run_ok(APP, "predict", str(photo), "--run_dir", run_dir, "--style", "starry_night", *GATYS)
    assert len(list((run_dir / "predictions" / "gatys").iterdir())) == 2
    kept = np.asarray(Image.open(run_dir / "predictions" / "photo_scream_stylized.png"))  # not replaced by the other
    assert np.array_equal(first, kept) and (run_dir / "predictions" / "photo_starry_night_stylized.png").is_file()


def test_gatys_photos_of_one_name_from_two_folders_do_not_share_a_folder(tmp_path):
    """Two cameras' IMG_0001 in two commands each get their own optimisation folder (the content's and the
    style's bytes name it); the same photo again finds its own and resumes there."""
    run_dir = tmp_path / "run"
    one, two = (_photo(tmp_path / trip / "IMG_0001.png", (36, 48), seed=k) for k, trip in enumerate(("trip1", "trip2")))
    run_ok(APP, "predict", str(one), "--run_dir", run_dir, "--style", "scream", *GATYS)
    out = run_ok(APP, "predict", str(two), "--run_dir", run_dir, "--style", "scream", *GATYS).stdout
    assert "36x48 stylised (gatys)" in out
    assert len(list((run_dir / "predictions" / "gatys").iterdir())) == 2
    out = run_ok(APP, "predict", str(one), "--run_dir", run_dir, "--style", "scream", *GATYS).stdout
    assert "resuming from step 3 of 3" in out and len(list((run_dir / "predictions" / "gatys").iterdir())) == 2


def test_user_errors_are_one_line(tmp_path):
    photo = _photo(tmp_path / "photo.png")
    code, _, err = run_main(APP, "predict", str(photo), "--run_dir", tmp_path / "r", "--style", "monet", *GATYS)
    assert code == 2 and last_line(err).startswith("error: style image not found: monet (give an image file")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    code, _, err = run_main(APP, "predict", str(photo), str(tmp_path / "broken.jpg"), "--run_dir", tmp_path / "r",
                            "--style", "scream", *GATYS)
    assert code == 2 and last_line(err).startswith(f"error: {tmp_path / 'broken.jpg'}: ")
    assert not (tmp_path / "r" / "predictions" / "gatys").exists()  # refused before the first photo's optimisation
    code, _, err = run_main(APP, "predict", str(photo), "--run_dir", tmp_path / "r", "--method", "model")
    assert code == 2 and "no trained model at" in last_line(err)
    code, _, err = run_main(APP, "train", "--run_dir", tmp_path / "t", *TINY, "--data.image_size", "50")
    assert code == 2 and "'data.image_size' (50) must be a multiple of 8" in last_line(err)
    code, _, err = run_main(APP, "train", "--run_dir", tmp_path / "t", *TINY, "--data.content", str(tmp_path / "none"))
    assert code == 2 and "content not found" in last_line(err)


@pytest.mark.slow
def test_gatys_killed_with_sigkill_resumes_to_the_uninterrupted_image(tmp_path):
    """predict's optimisation, killed -9 twice mid-run (checkpoints every step, kills inside saves too),
    then finished: the image equals an uninterrupted run's (Adam's moments and step count are saved)."""
    photo = _photo(tmp_path / "photo.png", (36, 48))
    steps = 150  # enough that a fast machine is still optimising 0.1 s after a save
    flags = ["--style", "scream", "--gatys.steps", str(steps), "--gatys.image_size", "48", "--gatys.save_every", "0",
             "--gatys.checkpoint_every", "1", "--gatys.init", "noise", "--method", "gatys"]
    run_ok(APP, "predict", photo, "--run_dir", tmp_path / "whole", *flags)  # here; the resume: a fresh process
    args = [sys.executable, "-m", "apps", APP, "predict", str(photo), "--run_dir", str(tmp_path / "killed"), *flags]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    for _ in range(2):
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        state = None
        while proc.poll() is None and time.time() < deadline:
            found = list((tmp_path / "killed").glob("predictions/gatys/*/checkpoints/state.npz"))
            if found and state is None:
                state = found[0].stat().st_mtime_ns
            elif found and found[0].stat().st_mtime_ns != state:  # it saves every step now: kill mid-run
                time.sleep(0.1)
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 2, "the optimisation finished before it could be killed; give it more steps"
    out = run_cli(APP, "predict", photo, "--run_dir", tmp_path / "killed", *flags).stdout
    resumed_at = int(re.search(rf"resuming from step (\d+) of {steps}", out).group(1))
    assert 0 < resumed_at < steps
    whole = np.asarray(Image.open(tmp_path / "whole" / "predictions" / "photo_scream_stylized.png"))
    resumed = np.asarray(Image.open(tmp_path / "killed" / "predictions" / "photo_scream_stylized.png"))
    assert np.array_equal(whole, resumed)
