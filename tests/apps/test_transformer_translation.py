"""The Transformer translation app end to end on a small word-mapping task (train, evaluate, export, translate
with the loaded export; its reload in a clean process: test_every_app.py), the long-input policy, and its
command-line error messages."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from data.generated.toy_text import write_word_pairs
from tests.conftest import run_cli, run_cli_calls, run_main, run_ok

TINY = ["--epochs", "16", "--batch_size", "512", "--data.dev_size", "50", "--data.test_size", "100",
        "--data.vocab_size", "300", "--data.max_length", "16", "--model.hidden_dim", "64", "--model.intermediate_dim", "128",
        "--model.encoder_layers", "1", "--model.decoder_layers", "1", "--model.dropout", "0", "--learning_rate", "0.005",
        "--jit_compile", "false", "--beam_size", "2", "--verbose", "line"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translation")
    write_word_pairs(folder / "pairs.tsv")
    run_ok("transformer_translation", "train", "--run_dir", folder / "run", "--data.source", "tsv",
           "--data.path", folder / "pairs.tsv", *TINY, cwd=folder)
    return folder


def test_train_evaluate_export_reload_translate(trained):
    run = trained / "run"
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 17 and (run / "data" / "source.model").is_file() and (run / "learning_curves.png").is_file()
    out = run_ok("transformer_translation", "evaluate", "--run_dir", run)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["bleu"] > 70 and metrics["chrf"] > 80 and metrics["token_accuracy"] > 0.9, metrics
    # a word-by-word mapping gives each source one translation: both BLEU figures agree
    assert metrics["references_per_source"] == 1.0 and metrics["bleu_multi_reference"] == metrics["bleu"], metrics
    assert f"BLEU {metrics['bleu']:.2f} (one reference per pair" in out.stdout
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed") and (run / "eval" / "attention_1.png").is_file()
    out = run_ok("transformer_translation", "predict", "Two red.", "Nine blue.", "--run_dir", run, "--attention")
    assert "Two red.\tDos rojo." in out.stdout and "Nine blue.\tNueve azul." in out.stdout
    assert (run / "predict" / "attention_2.png").is_file()
    run_ok("transformer_translation", "export", "--run_dir", run, "--export_dir", trained / "exports")
    serve = tf.saved_model.load(str(trained / "exports" / "1")).signatures["serving_default"]  # clean: test_every_app
    out = serve(sentences=tf.constant(["Two red.", "Nine  blue.", "Two " * 20]))
    translations, truncated = [t.decode() for t in out["translations"].numpy()], out["truncated"].numpy().tolist()
    assert translations[:2] == ["Dos rojo.", "Nueve azul."] and truncated == [False, False, True]


def test_long_inputs_warn_or_fail(trained):
    run = trained / "run"
    long_sentence = "One two three four five six seven eight nine ten one two three four five."
    out = run_main("transformer_translation", "predict", long_sentence, "--run_dir", run)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "warning: 1 input(s) longer than 15 subword tokens are truncated (first: argument 1)" in out.stdout
    proc = run_main("transformer_translation", "predict", "One.", long_sentence, "--run_dir", run, "--long_inputs", "fail")
    assert proc.returncode == 2
    assert "argument 2 has" in proc.stderr and "more than --data.max_length allows" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_with_other_data_flags_is_refused(trained):
    proc = run_main("transformer_translation", "train", "--run_dir", trained / "run", "--data.source", "tsv",
                    "--data.path", trained / "pairs.tsv", *TINY, "--data.vocab_size", "200", cwd=trained)
    assert proc.returncode == 2 and "prepared with other data flags" in proc.stderr, proc.stderr[-500:]


def test_resume_with_another_max_length_is_refused(tmp_path):
    """--data.max_length decides which pairs train (longer ones are dropped): the run records it, and a resumed run
    with another one is refused in one line (a run recorded before it was is not checked)."""
    from apps.core.errors import UserError
    from apps.transformer_translation.app import TransformerTranslationApp
    from data.text.pair_corpus import PreparedPairs

    cfg = TransformerTranslationApp.Config()
    app = TransformerTranslationApp(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, max_length=20)),
                                    tmp_path / "run")
    app._prepared = PreparedPairs(tmp_path / "run" / "data", {}, [0] * 30, [0] * 40)  # the two vocabularies' sizes
    state = app.state()
    assert state["max_length"] == 20
    app.resume_state(state)
    with pytest.raises(UserError, match=r"run holds a run trained with --data.max_length 16, not 20; resume it with "
                                        r"--data.max_length 16, or train in a new --run_dir$"):
        app.resume_state({**state, "max_length": 16})
    app.resume_state({k: v for k, v in state.items() if k != "max_length"})


@pytest.mark.parametrize("lines, flags, message", [
    ("Go.\tVe.\nHi. Hola.\n", [], "pairs.tsv: line 2 has no tab"),
    ("Go.\tVe.\n\nHi.\tHola.\n", [], "pairs.tsv: line 2 is empty"),
    (None, [], "translation file not found"),
])
def test_data_errors_are_one_line(tmp_path, lines, flags, message):
    if lines is not None:
        (tmp_path / "pairs.tsv").write_text(lines, encoding="utf-8")
    proc = run_main("transformer_translation", "train", "--run_dir", tmp_path / "run", "--data.source", "tsv",
                    "--data.path", tmp_path / "pairs.tsv", *flags)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-800:]


def test_parallel_files_of_different_lengths_from_the_command_line(tmp_path):
    (tmp_path / "en.txt").write_text("Go.\nHi.\n", encoding="utf-8")
    (tmp_path / "es.txt").write_text("Ve.\n", encoding="utf-8")
    proc = run_main("transformer_translation", "train", "--run_dir", tmp_path / "run", "--data.source", "parallel",
                    "--data.path", tmp_path / "en.txt", "--data.target_path", tmp_path / "es.txt")
    assert proc.returncode == 2 and "line 2 of" in proc.stderr and "has no partner" in proc.stderr


def test_extending_a_run_equals_training_straight_through(tmp_path):
    """Epoch order is a function of (seed, epoch): 1 epoch then 2 gives the weights of 2 at once."""
    import keras

    import apps.transformer_translation.model  # noqa: F401  (registers the model class for loading)

    write_word_pairs(tmp_path / "pairs.tsv", n=400)
    flags = ["--data.source", "tsv", "--data.path", tmp_path / "pairs.tsv", *TINY, "--deterministic", "true",
             "--data.dev_size", "20", "--data.test_size", "20"]
    # Two runs in one process, the second then extended by a fresh one: its model must be named as there
    run_cli_calls(["transformer_translation", "train", "--run_dir", tmp_path / "straight", *flags, "--epochs", "2"],
                  ["transformer_translation", "train", "--run_dir", tmp_path / "extended", *flags, "--epochs", "1"])
    run_cli("transformer_translation", "train", "--run_dir", tmp_path / "extended", *flags, "--epochs", "2")
    a, b = (keras.saving.load_model(tmp_path / name / "model.keras", compile=False) for name in ("straight", "extended"))
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_predict_input_that_is_not_utf8_is_named(monkeypatch):
    """`predict - < latin1.txt`: in a strict locale reading fails, in a UTF-8 one the bytes arrive as
    surrogates; either way one line, not SentencePiece's TypeError."""
    import io

    from apps.core.errors import UserError
    from apps.core.translation import _sentences

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Go.\r\n\r\n\ncaf\xe9\n"), encoding="utf-8"))
    with pytest.raises(UserError, match=r"line 4 of standard input is not UTF-8 text: b'caf\\xe9\\n'"):
        _sentences(["-"])  # the line's number in the file, blank lines counted
    with pytest.raises(UserError, match=r"argument 2 is not UTF-8 text: b'caf\?'"):
        _sentences(["Go.", b"caf\xe9".decode("utf-8", "surrogateescape")])
    assert _sentences(["Go.", "Café."]) == (["argument 1", "argument 2"], ["Go.", "Café."])


def test_predict_from_standard_input_keeps_blank_lines_and_drops_a_bom(monkeypatch):
    import io

    from apps.core.errors import UserError
    from apps.core.translation import _sentences

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\ufeffGo.\r\n\r\nCafé.\n".encode())))
    names, texts = _sentences(["-"])
    assert texts == ["Go.", "", "Café."]  # output line N answers input line N
    assert names[2] == "line 3 of standard input"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\n  \n")))
    with pytest.raises(UserError, match="predict needs sentences"):
        _sentences(["-"])
