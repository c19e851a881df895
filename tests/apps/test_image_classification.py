"""Image classification end to end: train, evaluate, predict, export and serve (the export's reload in a
clean process: test_every_app.py)."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY, last_line, run_main, run_ok

APP = "image_classification"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run shared by the tests of this module."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = run_ok(APP, "train", "--run_dir", run_dir, *TINY, "--epochs", "2", "--seed", "1")
    return run_dir, proc


@pytest.fixture(scope="module")
def sample_images(tmp_path_factory):
    """Three Fashion-MNIST test images as PNG and JPEG files."""
    folder = tmp_path_factory.mktemp("samples")
    with np.load("data/embedded/fashion_mnist_6k.npz") as z:
        for i in range(3):
            Image.fromarray(z["x_test"][i]).save(folder / f"s{i}.{'png' if i % 2 else 'jpg'}")
    return folder


def test_train_writes_the_run(trained):
    run_dir, proc = trained
    assert "Epoch 2/2" in proc.stdout
    for name in ("config.json", "state.json", "history.csv", "learning_curves.png", "model.keras"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "state.json").read_text())["class_names"][9] == "ankle boot"
    assert len((run_dir / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert list((run_dir / "logs").rglob("events.out.tfevents*"))


def test_evaluate_writes_metrics_and_confusion_matrix(trained):
    run_dir, _ = trained
    run_ok(APP, "evaluate", "--run_dir", run_dir)
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["examples"] == 1000 and 0.3 < metrics["accuracy"] <= 1.0  # 2 tiny epochs beat chance (0.1)
    assert metrics["top5_accuracy"] >= metrics["accuracy"]
    assert set(metrics["per_class"]["trouser"]) == {"precision", "recall", "f1", "support"}
    assert np.array(metrics["confusion_matrix"]).sum() == 1000
    assert (run_dir / "eval" / "confusion_matrix.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The run's export (its reload in a clean process, without the project: test_every_app.py)."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("exports")
    printed = run_ok(APP, "export", "--run_dir", trained[0], "--export_dir", folder).stdout
    version = folder / "1"
    assert str(version) in printed and (version / "saved_model.pb").is_file()
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp")]
    return tf.saved_model.load(str(version)).signatures["serving_default"]


def test_export_matches_predict(trained, sample_images, exported):
    import tensorflow as tf

    run_dir, _ = trained
    predicted = run_ok(APP, "predict", sample_images, "--run_dir", run_dir, "--top_k", "2").stdout
    top1 = {line.split(": ")[0].split("/")[-1]: line.split(": ")[1].split(" (")[0]
            for line in predicted.splitlines() if ": " in line}
    assert len(top1) == 3
    names = sorted(sample_images.iterdir())
    out = exported(images=tf.constant([p.read_bytes() for p in names]))
    assert list(exported.structured_input_signature[1]) == ["images"]
    assert sorted(out) == ["class_ids", "class_names", "probabilities"]
    assert {p.name: n.decode() for p, n in zip(names, out["class_names"].numpy())} == top1


def test_serving_rejects_bad_requests(sample_images, exported):
    import tensorflow as tf

    good = (sample_images / "s0.jpg").read_bytes()
    requests = {"empty": tf.constant([], tf.string), "rank2": tf.constant([[good]]),
                "not_image": tf.constant([good, b"hello world"]), "float": tf.constant([1.0])}
    lines = {}
    for name, value in requests.items():
        try:
            exported(images=value)
            lines[name] = "ACCEPTED"
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            lines[name] = f"{type(e).__name__} {' '.join(str(e).split())}"
    assert "InvalidArgumentError" in lines["empty"] and "`images` is empty" in lines["empty"]
    assert "InvalidArgumentError" in lines["rank2"] and "`images` must be a 1-D batch" in lines["rank2"]
    assert "InvalidArgumentError" in lines["not_image"] and "not a JPEG/PNG/GIF/BMP/WebP/PGM image, at indices:] [1]" in lines["not_image"]
    assert "InvalidArgumentError" in lines["float"] and "expected to be a string tensor" in lines["float"]


def test_export_versions_count_up_and_interrupted_export_leaves_nothing(trained, tmp_path, monkeypatch):
    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.image_classification.app import ImageClassification

    run_dir, _ = trained
    app = ImageClassification(load_saved_config(ImageClassification.Config, run_dir / "config.json"))
    (tmp_path / "1").mkdir()  # an earlier export (a first export is 1: test_export_matches_predict)
    assert runner.export(app, tmp_path).name == "2"

    def crash(*args, **kwargs):
        (tmp_path / ".tmp-3-x").mkdir()  # a partial write
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.tf.saved_model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        runner.export(app, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".tmp-3-x")) == ["1", "2"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-3-") and p.name != ".tmp-3-x"]


def test_user_errors_are_one_line(trained, tmp_path, class_folder):
    run_dir, _ = trained
    (tmp_path / "notes.txt").write_text("not an image")
    jpeg = (class_folder / "cat" / "001.jpg").read_bytes()
    (class_folder / "dog" / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    Image.fromarray(np.full((28, 28), 4095, np.uint16)).save(tmp_path / "twelve_bit.png")
    cases = [
        ([APP, "predict", tmp_path / "twelve_bit.png", "--run_dir", run_dir],
         "twelve_bit.png: a 16-bit PNG whose values reach only 4095 of 65535"),
        ([APP, "evaluate", "--run_dir", tmp_path / "empty_run"], "no trained model at"),
        ([APP, "predict", tmp_path / "missing.png", "--run_dir", run_dir], "input not found: "),
        ([APP, "predict", tmp_path / "notes.txt", "--run_dir", run_dir],
         "notes.txt: refused by the decoders the exported models use (`images` holds bytes that are not a "
         "JPEG/PNG/GIF/BMP/WebP/PGM image); convert it to PNG or JPEG"),
        ([APP, "predict", "--run_dir", run_dir], "predict needs inputs"),
        ([APP, "train", "--data.source", "folder", "--data.path", tmp_path / "nope", "--run_dir", tmp_path / "r"], "data folder not found"),
        ([APP, "train", "--data.source", "folder", "--data.path", class_folder, "--run_dir", tmp_path / "r3"],
         "1 bad image file(s): " + str(class_folder / "dog" / "broken.jpg") + ": corrupt image"),
        ([APP, "evaluate", "--run_dir", run_dir, "--data.image_size", "32"], "test images are (32, 32, 1) but the model expects (28, 28, 1)"),
        ([APP, "train", "--model.arch", "squeezenet", "--model.weights", class_folder / "cat" / "000.png",
          "--data.image_size", "32", "--data.channels", "3", "--run_dir", tmp_path / "r2"], "is not an HDF5 file"),
    ]
    for args, message in cases:
        proc = run_main(*args)
        assert proc.returncode == 2, (args, proc.stdout[-500:], proc.stderr[-1000:])
        assert message in last_line(proc.stderr) and "Traceback" not in proc.stderr, proc.stderr[-1000:]


@pytest.mark.parametrize("classes", [3, 11])
def test_evaluate_refuses_data_whose_classes_are_not_the_models(trained, tmp_path, classes):
    """Labels are scored by position: other class names would be scored against the model's (3 classes: silently;
    11: an IndexError past the model's 10)."""
    run_dir, _ = trained
    folder = tmp_path / "images"
    for c in range(classes):
        (folder / f"c{c:02d}").mkdir(parents=True)
        for i in range(6):  # one of each class's 6 goes to test
            Image.fromarray(np.full((28, 28), 20 * c, np.uint8)).save(folder / f"c{c:02d}" / f"{i}.png")
    proc = run_main(APP, "evaluate", "--run_dir", run_dir, "--data.source", "folder", "--data.path", folder,
                    "--data.image_size", "28", "--data.channels", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1000:]
    assert last_line(proc.stderr).endswith(
        f"the classes of --data.path {folder} are not the model's (data vs model: {classes} classes vs 10, "
        "#0 'c00' vs 't-shirt/top', #1 'c01' vs 'trouser', #2 'c02' vs 'pullover', ...); "
        "evaluate on data with the classes the run was trained on"), last_line(proc.stderr)


def test_early_stopping_ends_training(tmp_path):
    # Improvement is impossible whatever the seed: learning rate 0 freezes the weights, and without
    # batch norm no moving statistics move either (with them, epoch 2's val loss beat epoch 1's for
    # some seeds: a coin flip). The same weights on the same val batches give the same val loss,
    # which is no improvement (EarlyStopping wants a strictly lower one).
    proc = run_ok(APP, "train", "--run_dir", tmp_path, *TINY, "--epochs", "6", "--learning_rate", "0",
                  "--model.batch_norm", "false", "--seed", "5", "--early_stopping_patience", "1")
    assert "Epoch 2/6" in proc.stdout and "Epoch 3/6" not in proc.stdout  # no improvement after epoch 1
    from apps.core.plots import read_history

    val_loss = read_history(tmp_path / "history.csv")["val_loss"]
    assert len(val_loss) == 2 and val_loss[0] == val_loss[1]  # the construction holds: nothing moved
    assert (tmp_path / "model.keras").is_file()


def test_folder_run_evaluates_on_its_recorded_test_split(tmp_path, class_folder):
    """Issue 11: the split is recorded at training time; files added later are ignored, files gone reported."""
    run_dir = tmp_path / "run"
    flags = ["--data.source", "folder", "--data.path", class_folder, "--data.image_size", "16", "--data.test_fraction", "0.25",
             "--data.val_fraction", "0.25", "--batch_size", "8", "--learning_rate", "0.003", "--model.width", "8",
             "--model.depth", "1", "--verbose", "line"]
    run_ok(APP, "train", "--run_dir", run_dir, *flags, "--epochs", "1")
    record_file = run_dir / "data" / "splits.json"
    record = json.loads(record_file.read_text())
    test_files = [m["path"] for m in record["members"]["test"]]
    assert [len(record["members"][s]) for s in ("train", "val", "test")] == [21, 6, 9]
    assert not [p for p in record_file.parent.iterdir() if p.name != "splits.json"]  # no temporary file left

    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(class_folder / "cat" / "new.png")  # a re-scan would reshuffle
    proc = run_ok(APP, "train", "--run_dir", run_dir, *flags, "--epochs", "2")  # extending keeps the split
    assert "1 image file(s) under" in proc.stdout and json.loads(record_file.read_text()) == record

    (class_folder / test_files[0]).unlink()
    with pytest.warns(UserWarning, match=f"1 of the 9 files of the run's test split are gone, e.g. .*{test_files[0]}; using the other 8"):
        proc = run_ok(APP, "evaluate", "--run_dir", run_dir)
    assert "1 image file(s) under" in proc.stdout
    assert json.loads((run_dir / "eval" / "metrics.json").read_text())["examples"] == 8

    proc = run_main(APP, "evaluate", "--run_dir", run_dir, "--data.test_fraction", "0.5")
    assert proc.returncode == 2 and "made with other data flags (test_fraction 0.25 -> 0.5)" in last_line(proc.stderr)
    for name in test_files[1:]:
        (class_folder / name).unlink()
    proc = run_main(APP, "evaluate", "--run_dir", run_dir)
    assert proc.returncode == 2 and "all 9 files of the run's test split are gone from" in last_line(proc.stderr)
