"""Word-embeddings app end to end on a planted corpus (words that share contexts must end up
nearest neighbours), the export round trip, analogies and similarity on hand-made vectors, and
the errors a user can meet."""
import json

import numpy as np
import pytest

from apps.word_embeddings.evaluation import analogy_accuracy, rank, spearman, wordsim_spearman
from data.generated.toy_text import GROUPS, PLANTED, write_planted_corpus
from tests.conftest import run_main, run_ok

TINY = ["--epochs", "4", "--batch_size", "2000", "--data.min_count", "1", "--model.dim", "16",
        "--learning_rate", "0.05", "--verbose", "line"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("words")
    corpus = write_planted_corpus(root / "planted.txt")
    run = root / "run"
    run_ok("word_embeddings", "train", "--run_dir", run, "--data.source", "files", "--data.path", corpus, *TINY)
    return run


def _group_of(word):
    return next(name for name, (words, _) in GROUPS.items() if word in words)


def test_words_that_share_contexts_become_neighbours(trained):
    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.word_embeddings.app import WordEmbeddingsApp
    from apps.word_embeddings.model import normalized

    app = WordEmbeddingsApp(load_saved_config(WordEmbeddingsApp.Config, trained / "config.json"))
    model = runner.load_trained(app)
    index = {w: i for i, w in enumerate(app.vocabulary)}
    unit = normalized(model.vectors.numpy()[[index[w] for w in PLANTED]])
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    for i, word in enumerate(PLANTED):
        top3 = [PLANTED[j] for j in np.argsort(-sims[i])[:3]]
        assert {_group_of(w) for w in top3} == {_group_of(word)}, (word, top3)


def test_training_wrote_curves_vocabulary_and_checkpoints(trained):
    assert (trained / "learning_curves.png").stat().st_size > 0
    assert (trained / "corpus" / "vocabulary.tsv").read_text().count("\n") == 27
    assert list((trained / "checkpoints").glob("ckpt-*.index"))
    assert json.loads((trained / "state.json").read_text())["words"] == 15000


def test_evaluate_predict_and_export(trained, tmp_path):
    out = run_ok("word_embeddings", "evaluate", "--run_dir", trained, "--queries", "Cat,red,nowhere").stdout
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert metrics["analogy"]["questions"] == 19544 and metrics["analogy_coverage"] == 0  # no SOTU words here
    assert set(metrics["neighbours"]) == {"cat", "red"}  # standardised as the corpus: Cat -> cat
    assert "--queries not in the vocabulary (" in out and "no neighbours shown: nowhere" in out
    assert (trained / "eval" / "neighbours.png").stat().st_size > 0

    out = run_ok("word_embeddings", "predict", "cat", "Paris - capital + paint", "unicorn", "--run_dir", trained).stdout
    lines = {line.split(":")[0]: line for line in out.splitlines() if ":" in line}
    near = [item.split(" (")[0] for item in lines["cat"].split(": ", 1)[1].split(", ")]
    animals, contexts = GROUPS["animals"]
    group = set(animals + contexts) - {"cat"}  # the only words "cat" ever shares a sentence or a context with
    assert len(near) == 10 and set(near[:len(group)]) == group, near  # its 8 nearest: its own group, then the rest
    assert not group & set(near[len(group):]), near
    assert "unicorn: not in the vocabulary (27 words): unicorn" in out
    assert "Paris - capital + paint: " in out

    run_ok("word_embeddings", "export", "--run_dir", trained, "--export_dir", tmp_path)
    version = tmp_path / "1"
    header, *rows = (version / "vectors.txt").read_text().splitlines()
    assert header == "27 16" and len(rows) == 27 and len(rows[0].split()) == 17
    assert len((version / "vectors.tsv").read_text().splitlines()) == 27
    words = (version / "metadata.tsv").read_text().splitlines()
    assert len(words) == 27 and "cat" in words

    import tensorflow as tf

    loaded = tf.saved_model.load(str(version))
    got = loaded.signatures["serving_default"](words=tf.constant(["CAT", "unicorn", "dog"]))
    assert got["in_vocabulary"].numpy().tolist() == [True, False, True]
    np.testing.assert_array_equal(got["vectors"].numpy()[1], np.zeros(16))  # out of vocabulary: zeros, flagged
    vectors_txt = {r.split()[0]: np.array(r.split()[1:], float) for r in rows}
    np.testing.assert_allclose(got["vectors"].numpy()[0], vectors_txt["cat"], atol=1e-5)
    near = loaded.signatures["neighbors"](words=tf.constant(["paris", "unicorn"]), k=tf.constant(3))
    names = [[w.decode() for w in row] for row in near["neighbors"].numpy()]
    assert "paris" not in names[0] and len(names[0]) == 3
    assert names[1] == ["", "", ""] and near["similarities"].numpy()[1].tolist() == [0, 0, 0]


def test_analogies_on_hand_made_vectors():
    vocabulary = ["king", "queen", "man", "woman", "apple"]
    vectors = np.array([[1, 1, 0], [1, -1, 0], [0, 1, 0.1], [0, -1, 0.1], [0, 0, 1]], np.float32)
    sections = {"family": [("man", "woman", "king", "queen"), ("man", "king", "woman", "apple")],
                "unseen": [("man", "woman", "prince", "princess")]}
    report = analogy_accuracy(vectors, vocabulary, sections, restrict=5)
    assert report["seen"] == 2 and report["coverage"] == pytest.approx(2 / 3)
    assert report["3cosadd"] == 0.5 and report["3cosmul"] == 0.5
    assert report["sections"]["unseen"]["seen"] == 0
    assert analogy_accuracy(vectors, vocabulary, sections, restrict=3)["seen"] == 0  # 'woman' is 4th


def test_spearman_with_ties_and_wordsim_coverage():
    assert rank([10, 20, 20, 30]).tolist() == [1, 2.5, 2.5, 4]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)  # scipy.stats.spearmanr
    vectors = np.array([[1, 0], [1, 0.1], [0, 1], [-1, 0]], np.float32)
    pairs = [("a", "b", 9.0), ("a", "c", 5.0), ("a", "d", 1.0), ("a", "zzz", 3.0)]
    report = wordsim_spearman(vectors, ["a", "b", "c", "d"], pairs)
    assert report["seen"] == 3 and report["coverage"] == 0.75 and report["spearman"] == pytest.approx(1.0)


@pytest.mark.parametrize("flags, message", [
    (["--clipnorm", "1"], "unrecognized arguments: --clipnorm 1"),  # its own update step: no optimizer options
    (["--optimizer", "adam"], "unrecognized arguments: --optimizer adam"),
    (["--strategy", "mirrored"], "trains on one device"),
    (["--data.source", "files", "--data.path", "no/such/corpus"], "text corpus not found: no/such/corpus"),
])
def test_user_errors_are_one_line(flags, message, tmp_path):
    proc = run_main("word_embeddings", "train", "--run_dir", tmp_path / "run", *flags)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_non_utf8_corpus_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good words here\n\xff\xfe broken\n")
    proc = run_main("word_embeddings", "train", "--run_dir", tmp_path / "run", "--data.source", "files", "--data.path", bad)
    assert proc.returncode == 2 and "bad.txt: line 2 is not UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def hashes(folder):
    """{relative path: sha256} of every file under `folder` but the lock a trainer holds."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "train.lock"}


@pytest.mark.parametrize("change", ["min_count", "another corpus", "another corpus, no manifest"])
def test_a_resume_with_another_corpus_is_refused_before_anything_is_written(tmp_path, change):
    """Issue 11: the run's corpus/ids.bin and vocabulary.tsv stay as they were; nothing in the run is written."""
    corpus = write_planted_corpus(tmp_path / "planted.txt")
    other = tmp_path / "other.txt"
    other.write_text("the sun rose over the quiet hills and the river ran on\n" * 40, encoding="utf-8")
    run = tmp_path / "run"
    flags = [*TINY, "--epochs", "1"]
    run_ok("word_embeddings", "train", "--run_dir", run, "--data.source", "files", "--data.path", corpus, *flags)
    if change == "another corpus, no manifest":  # a run prepared before corpus manifests were written
        (run / "corpus" / "manifest.json").unlink()
    before = hashes(run)
    path, extra = (corpus, ["--data.min_count", "2"]) if change == "min_count" else (other, [])
    proc = run_main("word_embeddings", "train", "--run_dir", run, "--data.source", "files", "--data.path", path, *flags,
                    "--epochs", "2", *extra)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    expected = {"min_count": "min_count 1 -> 2", "another corpus": f"path {str(corpus)!r} -> {str(other)!r}",
                "another corpus, no manifest": "holds another vocabulary"}[change]
    assert expected in line and "--run_dir" in line, line
    assert hashes(run) == before
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_resume_reads_the_runs_corpus_back(tmp_path):
    """The run's prepared corpus is its own: resuming neither re-reads the source nor rewrites the files; a
    folder from before manifests that gives the same vocabulary is kept (and gets its manifest)."""
    corpus = write_planted_corpus(tmp_path / "planted.txt")
    run = tmp_path / "run"
    flags = ["--data.source", "files", "--data.path", corpus, *TINY, "--epochs", "1"]
    run_ok("word_embeddings", "train", "--run_dir", run, *flags)
    ids = (run / "corpus" / "ids.bin").read_bytes()
    manifest = json.loads((run / "corpus" / "manifest.json").read_text())
    assert manifest["words"] == 15000 and manifest["vocabulary"] == 27 and manifest["recipe"]["min_count"] == 1
    corpus.unlink()  # the source may go: the run has its corpus
    stamp = (run / "corpus" / "ids.bin").stat().st_mtime_ns
    run_ok("word_embeddings", "train", "--run_dir", run, *flags, "--epochs", "2")
    assert (run / "corpus" / "ids.bin").stat().st_mtime_ns == stamp
    (run / "corpus" / "manifest.json").unlink()
    write_planted_corpus(corpus)
    run_ok("word_embeddings", "train", "--run_dir", run, *flags, "--epochs", "3")
    assert (run / "corpus" / "ids.bin").read_bytes() == ids
    assert json.loads((run / "corpus" / "manifest.json").read_text()) == manifest


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_equals_uninterrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import tensorflow as tf

    from tests.conftest import ROOT, run_cli_calls

    corpus = write_planted_corpus(tmp_path / "planted.txt")
    flags = ["--data.source", "files", "--data.path", str(corpus), *TINY, "--deterministic", "true", "--seed", "3"]
    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "apps", "word_embeddings", "train", "--run_dir", str(killed), *flags,
            "--checkpoint_every_steps", "1"]
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not tf.train.latest_checkpoint(str(killed / "checkpoints")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed, _ = run_cli_calls(["word_embeddings", "train", "--run_dir", killed, *flags, "--checkpoint_every_steps", "1"],
                               ["word_embeddings", "train", "--run_dir", tmp_path / "clean", *flags])
    assert "resuming from epoch" in resumed

    import keras

    a, b = (keras.saving.load_model(d / "model.keras", compile=False) for d in (killed, tmp_path / "clean"))
    np.testing.assert_array_equal(a.vectors.numpy(), b.vectors.numpy())
    np.testing.assert_array_equal(a.context_vectors.numpy(), b.context_vectors.numpy())


def test_evaluation_files_errors(tmp_path):
    from apps.core.errors import UserError
    from apps.word_embeddings.evaluation import read_analogies, read_wordsim

    with pytest.raises(UserError, match="analogy questions file not found"):
        read_analogies(tmp_path / "none.txt")
    (tmp_path / "bad.txt").write_text(": family\nking queen man\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.txt:2: expected ': section' or four words"):
        read_analogies(tmp_path / "bad.txt")
    (tmp_path / "bad.txt").write_text("king queen man woman\n: family\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.txt:1: a question before any ': section' line"):
        read_analogies(tmp_path / "bad.txt")
    (tmp_path / "bad.tsv").write_text("# comment\nking\tqueen\t8.5\nking\tqueen\tnot-a-number\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv:3: expected 'word1<TAB>word2<TAB>score'"):
        read_wordsim(tmp_path / "bad.tsv")
    (tmp_path / "bad.tsv").write_text("Word 1\tWord 2\tHuman (mean)\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv: no word pairs with a score"):
        read_wordsim(tmp_path / "bad.tsv")
    (tmp_path / "latin.tsv").write_bytes(b"caf\xe9\tbar\t1.0\n")
    with pytest.raises(UserError, match="word-similarity file .*latin.tsv is not UTF-8"):
        read_wordsim(tmp_path / "latin.tsv")


def test_the_common_similarity_and_analogy_layouts_are_read(tmp_path):
    """WordSim-353's combined.tab and combined.csv (header row), SimLex-999 (its SimLex999 column, after POS),
    MEN (spaces); an analogy section named twice (files put together) keeps both parts."""
    from apps.word_embeddings.evaluation import read_analogies, read_wordsim

    layouts = {"combined.tab": "Word 1\tWord 2\tHuman (mean)\nlove\tsex\t6.77\ntiger\tcat\t7.35\n",
               "combined.csv": "Word 1,Word 2,Human (mean)\nlove,sex,6.77\ntiger,cat,7.35\n",
               "SimLex-999.txt": "word1\tword2\tPOS\tSimLex999\tconc(w1)\nlove\tsex\tN\t6.77\t4.1\n"
                                 "tiger\tcat\tN\t7.35\t4.9\n",
               "MEN_natural.txt": "love sex 6.77\ntiger cat 7.35\n"}
    for name, text in layouts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert read_wordsim(tmp_path / name) == [("love", "sex", 6.77), ("tiger", "cat", 7.35)], name
    (tmp_path / "q.txt").write_text(": family\nking queen man woman\n: capitals\nparis france rome italy\n"
                                    ": family\nboy girl brother sister\n", encoding="utf-8")
    assert read_analogies(tmp_path / "q.txt") == {"family": [("king", "queen", "man", "woman"),
                                                             ("boy", "girl", "brother", "sister")],
                                                  "capitals": [("paris", "france", "rome", "italy")]}


def test_decomposed_words_are_the_corpus_words_in_test_files_and_the_export(tmp_path):
    """The corpus is composed (NFC); "café" typed as "cafe" + U+0301 (macOS, some keyboards) must find it in
    similarity and analogy files and in the exported lookup, which cannot compose in its graph."""
    import tensorflow as tf

    from apps.word_embeddings.evaluation import read_analogies, read_wordsim
    from apps.word_embeddings.serving import EmbeddingServing

    decomposed = "cafe\u0301"
    (tmp_path / "sim.tab").write_text(f"{decomposed}\tbar\t6.5\n", encoding="utf-8")
    assert read_wordsim(tmp_path / "sim.tab") == [("caf\u00e9", "bar", 6.5)]
    (tmp_path / "q.txt").write_text(f": drinks\n{decomposed} coffee bar beer\n", encoding="utf-8")
    assert read_analogies(tmp_path / "q.txt") == {"drinks": [("caf\u00e9", "coffee", "bar", "beer")]}

    module = EmbeddingServing(np.eye(3, dtype=np.float32), ["bar", "caf\u00e9", "na\u00efve"])
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve.get_concrete_function()})
    module.release_vocabulary_file()
    serve = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    got = serve(words=tf.constant(["CAFE\u0301", "caf\u00e9", "nai\u0308ve", "cafe", "bar"]))
    assert got["in_vocabulary"].numpy().tolist() == [True, True, True, False, True]
    np.testing.assert_array_equal(got["vectors"].numpy()[:3], [[0, 1, 0], [0, 1, 0], [0, 0, 1]])


def test_predict_query_parsing():
    from apps.core.errors import UserError
    from apps.word_embeddings.app import _parse_query

    assert _parse_query("king - man + woman") == [(1, "king"), (-1, "man"), (1, "woman")]
    assert _parse_query("Paris") == [(1, "Paris")]
    assert _parse_query("well-known") == [(1, "well-known")]  # a hyphen inside a word is the word's
    assert _parse_query("king -man +woman") == [(1, "king"), (-1, "man"), (1, "woman")]
    with pytest.raises(UserError, match="has no word"):
        _parse_query(" + ")


def test_export_leaves_no_temporary_folder(trained, tmp_path, monkeypatch):
    """Issue 11: the vocabulary file the SavedModel's table reads goes once the export is written."""
    import tempfile

    import tensorflow as tf

    from apps.word_embeddings.serving import EmbeddingServing

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where tempfile.mkdtemp() puts folders
    leftovers = lambda: [p.name for p in scratch.iterdir() if p.name.startswith(EmbeddingServing.VOCABULARY_PREFIX)]

    run_ok("word_embeddings", "export", "--run_dir", trained, "--export_dir", tmp_path / "exports")
    assert leftovers() == []
    assert (tmp_path / "exports" / "1" / "assets" / "vocabulary.txt").read_text().count("\n") == 27

    module = EmbeddingServing(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    assert len(leftovers()) == 1
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve.get_concrete_function()})
    module.release_vocabulary_file()
    assert leftovers() == []
    assert module.serve(tf.constant(["b", "z"]))["in_vocabulary"].numpy().tolist() == [True, False]  # still works here
    loaded = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    np.testing.assert_array_equal(loaded(words=tf.constant(["C"]))["vectors"].numpy(), [[0, 0, 1]])
