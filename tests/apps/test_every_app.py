"""Smoke test over every registered app: tiny train, evaluate, predict, export, then the SavedModel
reloaded in a clean process gives the outputs of the app's own serving module."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from apps.core.registry import get_app, list_apps
from tests.apps.test_object_detection import TINY as DETECTION_TINY
from tests.conftest import TINY as CLASSIFICATION_TINY
from tests.apps.test_transformer_translation import TINY as TRANSLATION_TINY
from tests.apps.test_word_embeddings import TINY as WORDS_TINY
from tests.conftest import last_line, run_cli


def _digit_png(folder):
    with np.load("data/embedded/mnist_6k.npz") as z:
        Image.fromarray(z["x_test"][0]).save(folder / "sample.png")
    return str(folder / "sample.png"), {"images": [(folder / "sample.png").read_bytes()]}


def _scene_png(folder):
    from data.generated.scenes import make_scenes

    Image.fromarray(make_scenes(1, seed=5, size=64)[0][0]).save(folder / "sample.png")
    return str(folder / "sample.png"), {"images": [(folder / "sample.png").read_bytes()]}


def _planted_words(folder):
    from tests.apps.test_word_embeddings import write_planted_corpus

    write_planted_corpus(folder / "corpus.txt", sentences=600)
    return "cat", {"words": [b"cat", b"unicorn"]}


def _word_pairs(folder):
    from tests.apps.test_transformer_translation import write_word_pairs

    write_word_pairs(folder / "pairs.tsv")
    return "Two red.", {"sentences": [b"Two red.", b"Nine blue."]}


# app -> (tiny training flags, a function preparing a sample in a folder: (predict argument, serving inputs))
SMOKE = {
    "image_classification": (CLASSIFICATION_TINY, _digit_png),
    "object_detection": (DETECTION_TINY, _scene_png),
    "word_embeddings": (["--data.source", "files", "--data.path", "corpus.txt", *WORDS_TINY], _planted_words),
    "transformer_translation": (["--data.source", "tsv", "--data.path", "pairs.tsv", *TRANSLATION_TINY], _word_pairs),
}


def test_every_registered_app_has_a_smoke_entry():
    assert set(list_apps()) == set(SMOKE)


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_app_round_trip(name, tmp_path):
    flags, make_sample = SMOKE[name]
    run_dir = tmp_path / "run"
    sample, serve_inputs = make_sample(tmp_path)
    run_cli(name, "train", "--run_dir", run_dir, *flags, cwd=tmp_path)
    run_cli(name, "evaluate", "--run_dir", run_dir)
    assert json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert sample in run_cli(name, "predict", sample, "--run_dir", run_dir).stdout
    run_cli(name, "export", "--run_dir", run_dir, "--export_dir", tmp_path / "exports")
    imports = "; ".join(f"import {m}" for m in get_app(name).serving_imports)  # e.g. custom ops
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        {imports}
        serve = tf.saved_model.load({str(tmp_path / "exports" / "1")!r}).signatures["serving_default"]
        out = serve(**{{k: tf.constant(v) for k, v in {serve_inputs!r}.items()}})
        assert not {{"apps", "layers", "data"}} & set(sys.modules), "the project was imported"
        print(json.dumps({{k: v.numpy().tolist() if v.dtype != tf.string else [s.decode() for s in v.numpy().ravel()]
                          for k, v in out.items()}}))
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported = json.loads(last_line(proc.stdout))

    from apps.core import runner
    from apps.core.config import load_saved_config

    app_cls = get_app(name)
    app = app_cls(load_saved_config(app_cls.Config, run_dir / "config.json"))
    module = app.serving_model(runner.load_trained(app))
    import tensorflow as tf

    mine = module.serve(*(tf.constant(v) for v in serve_inputs.values()))
    assert sorted(mine) == sorted(exported)
    for key, value in mine.items():
        if value.dtype == tf.string:
            assert [s.decode() for s in value.numpy().ravel()] == exported[key], key
        else:
            np.testing.assert_allclose(value.numpy(), exported[key], atol=1e-4, err_msg=key)
