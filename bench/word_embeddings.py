"""Benchmark: this app's skip-gram against gensim's Word2Vec on the full SOTU corpus, same settings.

    .venv/bin/pip install gensim==4.4.0        # the peer (not a dependency of the suite)
    .venv/bin/python bench/word_embeddings.py --trials 3

Both train on the same token stream: the app's standardisation and vocabulary (min count 5) turn
../shared/data/text/sotu into sentences (one per line, in-vocabulary words only), and gensim gets
those sentences. Settings: dimension 100, window 5, 5 negatives, sample 1e-3, 5 epochs, learning
rate 0.025 -> 0.0001, skip-gram, 2 threads/workers. Words/second = in-vocabulary corpus words x
epochs / training wall time (vocabulary building excluded for both), best of --trials runs,
alternating app and gensim so both see the same machine. Quality: analogy accuracy (3CosAdd,
3CosMul, questions within the 30,000 most frequent words) and WordSim-353 Spearman, computed by
the app's evaluator for both (gensim's own analogy score printed as a cross-check).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# data.text.corpus.EMBEDDED_WORD_EVAL, spelled out: the gensim side must not import TensorFlow
EVAL_DIR = Path(__file__).resolve().parents[1] / "data" / "embedded" / "word_eval"

SETTINGS = {"dim": 100, "window": 5, "negatives": 5, "min_count": 5, "sample": 1e-3, "epochs": 5, "alpha": 0.025,
            "min_alpha": 0.0001}


def quality(vectors, vocabulary):
    from apps.word_embeddings.evaluation import analogy_accuracy, read_analogies, read_wordsim, wordsim_spearman

    analogy = analogy_accuracy(vectors, vocabulary, read_analogies(EVAL_DIR / "questions-words.txt"), 30000)
    wordsim = wordsim_spearman(vectors, vocabulary, read_wordsim(EVAL_DIR / "wordsim353.tsv"))
    return {"analogy_3cosadd": round(analogy["3cosadd"], 4), "analogy_3cosmul": round(analogy["3cosmul"], 4),
            "analogy_coverage": round(analogy["coverage"], 4), "wordsim353_spearman": round(wordsim["spearman"], 4),
            "wordsim353_pairs": wordsim["seen"]}


def train_timer():
    """A Keras callback timing on_train_begin -> on_train_end (summed over fit() calls), made on demand
    so that the gensim side never imports TensorFlow."""
    import keras

    class TrainTimer(keras.callbacks.Callback):
        seconds = 0.0

        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds += time.perf_counter() - self._start

    return TrainTimer()


def run_app(corpus_dir, seed, extra):
    import apps  # noqa: F401  (sets TensorFlow's environment before it is imported)
    from apps.core import runner
    from apps.core.config import apply_overrides
    from apps.word_embeddings.app import WordEmbeddingsApp

    out = Path(tempfile.mkdtemp(prefix="bench-words-"))
    s = SETTINGS
    flags = {"run_dir": str(out), "verbose": "line", "seed": seed, "data.source": "files", "data.path": str(corpus_dir),
             "model.dim": s["dim"], "data.window": s["window"], "data.negatives": s["negatives"],
             "data.min_count": s["min_count"], "data.sample": s["sample"], "epochs": s["epochs"],
             "learning_rate": s["alpha"], "min_learning_rate": s["min_alpha"], **extra}
    app = WordEmbeddingsApp(apply_overrides(WordEmbeddingsApp.Config(), flags))
    timer = train_timer()
    model = runner.train(app, extra_callbacks=[timer])
    words = app.corpus.kept_words * s["epochs"]
    return {"words_per_second": round(words / timer.seconds), "train_seconds": round(timer.seconds, 1),
            **quality(model.vectors.numpy(), app.vocabulary)}


def run_gensim(sentences, vocabulary, seed, sg=1, vectors_out=None):
    """Train gensim (in a process that has not imported TensorFlow) and save its vectors for scoring."""
    from gensim.models import Word2Vec

    s = SETTINGS
    model = Word2Vec(vector_size=s["dim"], window=s["window"], negative=s["negatives"], min_count=s["min_count"],
                     sample=s["sample"], sg=sg, workers=2, seed=seed, alpha=s["alpha"], min_alpha=s["min_alpha"])
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=s["epochs"])
    seconds = time.perf_counter() - start
    words = sum(len(x) for x in sentences) * s["epochs"]
    np.save(vectors_out, np.stack([model.wv[w] for w in vocabulary]))
    assert "tensorflow" not in sys.modules, "the gensim side must run without TensorFlow in its process"
    own = model.wv.evaluate_word_analogies(str(EVAL_DIR / "questions-words.txt"), restrict_vocab=30000)[0]
    return {"words_per_second": round(words / seconds), "train_seconds": round(seconds, 1),
            "gensim_own_analogy": round(own, 4)}


def prepared_corpus(path):
    """The app's vocabulary of `path` and its sentences as word lists (what gensim is given)."""
    from data.text.skipgram import TextDataConfig
    from data.text.corpus import prepare_corpus

    corpus = prepare_corpus(TextDataConfig(source="files", path=path, min_count=SETTINGS["min_count"]),
                            Path(tempfile.mkdtemp(prefix="bench-corpus-")))
    ids = np.fromfile(corpus.ids_path, "<i4")
    words = np.array(corpus.vocabulary, dtype=object)
    sentences = [list(words[kept]) for chunk in np.split(ids, np.flatnonzero(ids < 0) + 1) if (kept := chunk[chunk >= 0]).size]
    return corpus, sentences


def one_trial(args):
    """Run one side once in this process and print its figures as the last line."""
    if args.one == "app":
        result = run_app(args.corpus, args.seed, {"model.arch": args.arch, **json.loads(args.app_flags)})
    else:
        folder = Path(args.sentences)
        vocabulary = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
        sentences = [line.split() for line in (folder / "sentences.txt").read_text(encoding="utf-8").splitlines()]
        result = run_gensim(sentences, vocabulary, args.seed, sg=int(args.arch == "skipgram"),
                            vectors_out=folder / f"gensim-{args.seed}.npy")
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "sotu"))
    p.add_argument("--app_flags", default="{}", help="JSON of extra app flags, e.g. '{\"batch_size\": 10000}'")
    p.add_argument("--arch", choices=["skipgram", "cbow"], default="skipgram", help="both sides train this architecture")
    p.add_argument("--one", choices=["app", "gensim"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--sentences", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return one_trial(args)

    import apps  # noqa: F401  (sets TensorFlow's environment before it is imported)

    corpus, sentences = prepared_corpus(args.corpus)
    folder = Path(tempfile.mkdtemp(prefix="bench-sentences-"))  # what the gensim processes read
    (folder / "sentences.txt").write_text("".join(" ".join(x) + "\n" for x in sentences), encoding="utf-8")
    (folder / "vocabulary.txt").write_text("".join(w + "\n" for w in corpus.vocabulary), encoding="utf-8")
    print(f"corpus: {corpus.words:,} words, {corpus.kept_words:,} in a vocabulary of {len(corpus.vocabulary):,}, "
          f"{len(sentences)} sentences", flush=True)
    results = {"app": [], "gensim": []}
    for trial in range(args.trials):  # alternating, each run in a fresh process: neither inherits the other's threads
        for side in ("app", "gensim"):
            proc = subprocess.run([sys.executable, __file__, "--one", side, "--seed", str(trial), "--corpus", args.corpus,
                                   "--arch", args.arch, "--app_flags", args.app_flags, "--sentences", str(folder)],
                                  capture_output=True, text=True, check=True)
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if side == "gensim":  # scored here, with the app's evaluator, after gensim's process has ended
                result.update(quality(np.load(folder / f"gensim-{trial}.npy"), corpus.vocabulary))
            results[side].append(result)
            print(side, results[side][-1], flush=True)
    best = {k: max(v, key=lambda r: r["words_per_second"]) for k, v in results.items()}
    summary = {"settings": {**SETTINGS, "arch": args.arch}, "corpus_words": corpus.words, "kept_words": corpus.kept_words,
               "vocabulary": len(corpus.vocabulary), "trials": results,
               "speed_ratio_best": round(best["app"]["words_per_second"] / best["gensim"]["words_per_second"], 3),
               "speed_ratio_per_trial": [round(a["words_per_second"] / g["words_per_second"], 3)
                                         for a, g in zip(results["app"], results["gensim"])],
               "mean": {k: {m: round(float(np.mean([r[m] for r in v])), 4) for m in v[0] if m != "gensim_own_analogy"}
                        for k, v in results.items()}}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
