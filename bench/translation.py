"""Benchmark: the Transformer translation app on the full English-Spanish Anki pairs; its `run()` and
`arguments()` are the harness of every translation benchmark (bench/seq2seq.py: the recurrent model).

    .venv/bin/python bench/translation.py --minutes 60          # train <= 60 min, evaluate, latency
    .venv/bin/python bench/translation.py --timing_only         # a few hundred steps: tokens/s and MFU only

Data: ../shared/data/translation/spa-eng.txt (118,964 pairs), deduplicated, split by source sentence
with seed 0 into a 2,000-pair test split, 1,000 dev pairs, and the rest for training. Training stops
at the end of the first step after --minutes of wall time (XLA compilation and validation included).
Reported: sacreBLEU (single and multi-reference) and chrF on the test split (greedy, and beam 4 with
length penalty 0.6), training tokens/s, the training-step MFU against a float32 matmul peak measured in the same run,
and the SavedModel's per-sentence latency (batch of 1, greedy and beam 4) on short test sentences,
measured in a fresh process that imports only TensorFlow and tensorflow-text.

FLOPs are counted analytically from the layer shapes of each batch (projections, attention scores and
sums, feed-forward, output layer; training = 3 x forward), once on the padded shapes the step
computes (the MFU) and once on real tokens only ("useful" MFU).
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apps  # noqa: F401,E402  (sets TensorFlow's environment before it is imported)
import keras  # noqa: E402

from bench.common import SHARED, StepTimer, matmul_peak_gflops  # noqa: E402
from data.text.subword import PAD  # noqa: E402

RECIPE = {"data.source": "tsv", "data.test_size": 2000, "data.dev_size": 1000, "data.vocab_size": 8000,
          "data.max_length": 40, "seed": 0, "epochs": 100, "batch_size": 6144, "learning_rate": 1e-3,
          "warmup_epochs": 1.0, "model.hidden_dim": 256, "model.encoder_layers": 3, "model.decoder_layers": 3,
          "model.num_heads": 4, "model.intermediate_dim": 2048, "model.dropout": 0.1, "verbose": "line"}


def forward_flops(m, rows, source_length, target_length, source_real=None, target_real=None):
    """Forward FLOPs of a batch; with *_real token counts, only the work on real tokens."""
    d, ff, v = m["hidden_dim"], m["intermediate_dim"], m["target_vocab"]
    s_tok = source_real if source_real is not None else rows * source_length
    t_tok = target_real if target_real is not None else rows * target_length
    s_len, t_len = s_tok / rows, t_tok / rows  # attention spans per query
    encoder = s_tok * (4 * d * d + 2 * d * ff) * 2 + 2 * 2 * s_tok * s_len * d
    decoder = (t_tok * (6 * d * d + 2 * d * ff) * 2 + s_tok * 2 * d * d * 2
               + 2 * 2 * t_tok * t_len * d + 2 * 2 * t_tok * s_len * d)
    return m["encoder_layers"] * encoder + m["decoder_layers"] * decoder + 2 * t_tok * d * v


def epoch_flops(batches, m, forward=forward_flops):
    """Training FLOPs of an epoch (padded shapes, and real tokens only) and its real source and target tokens."""
    padded = useful = 0.0
    real_source = real_target = 0
    for rows, src, t_in, _ in batches.buckets:
        n_batches = -(-len(src) // rows)
        padded += n_batches * forward(m, rows, src.shape[1], src.shape[1])
        s, t = int((src != PAD).sum()), int((t_in != PAD).sum())
        useful += forward(m, len(src), src.shape[1], src.shape[1], s, t)  # spans: the bucket's mean real lengths
        real_source, real_target = real_source + s, real_target + t
    return 3 * padded, 3 * useful, real_source, real_target


class TimeBudget(keras.callbacks.Callback):
    """Stop training at the first step end after `seconds` of wall time."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.start = seconds, None

    def on_train_begin(self, logs=None):
        self.start = self.start or time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def latency(export_dir, sentences, trials=3):
    """Median seconds per sentence (batch of 1) of the SavedModel, best of `trials`, in a fresh process."""
    script = textwrap.dedent(f"""
        import json, statistics, time
        import tensorflow as tf
        import tensorflow_text
        serve = tf.saved_model.load({str(export_dir)!r}).signatures["serving_default"]
        sentences = {sentences!r}
        for s in sentences[:5]:
            serve(sentences=tf.constant([s]))
        best = []
        for _ in range({trials}):
            times = []
            for s in sentences:
                start = time.perf_counter()
                serve(sentences=tf.constant([s]))["translations"].numpy()
                times.append(time.perf_counter() - start)
            best.append(statistics.median(times))
        print(json.dumps(best))
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def arguments(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--pairs", default=str(SHARED / "translation" / "spa-eng.txt"))
    p.add_argument("--minutes", type=float, default=60.0, help="training wall-time budget")
    p.add_argument("--timing_only", action="store_true", help="train --timing_steps steps; report throughput and MFU only")
    p.add_argument("--timing_steps", type=int, default=300)
    p.add_argument("--run_dir", default=None)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe flags")
    return p.parse_args()


def run(app_class, recipe, forward, args):
    """Train `app_class` with `recipe` (+ --set) for --minutes, then evaluate, export and time the export;
    prints the result as JSON and returns it. `forward` counts a batch's forward FLOPs (see forward_flops)."""
    from apps.core import runner
    from apps.core.config import apply_overrides

    flags = {**recipe, "data.path": args.pairs, "run_dir": args.run_dir or tempfile.mkdtemp(prefix="bench-translation-")}
    flags.update(dict(kv.split("=", 1) for kv in args.set))
    app = app_class(apply_overrides(app_class.Config(), flags))
    peak_before = matmul_peak_gflops()
    timer, budget = StepTimer(), TimeBudget(args.minutes * 60)
    if args.timing_only:
        app.config.epochs = 1
        budget.seconds = float("inf")
        stopper = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: setattr(
            timer.model, "stop_training", len(timer.step_times) >= args.timing_steps))
        extra = [timer, stopper]
    else:
        extra = [timer, budget]
    start = time.perf_counter()
    model = runner.train(app, extra_callbacks=extra)
    train_seconds = time.perf_counter() - start
    peak = max(peak_before, matmul_peak_gflops())

    m = {**vars(app.config.model), "target_vocab": len(app.prepared.target)}
    batches = app._split("train")
    padded, useful, real_source, real_target = epoch_flops(batches, m, forward)
    steps = len(batches)
    skip = min(50, len(timer.step_times) // 4)  # compilation of each bucket's step
    steady = timer.step_times[skip:]
    mean_step = statistics.mean(steady)
    # the steady steps draw batches from every bucket in shuffled order, so an epoch's mean batch applies
    result = {"flags": flags, "train_pairs": batches.pairs, "steps_per_epoch": steps, "steps": len(timer.step_times),
              "train_minutes": round(train_seconds / 60, 1), "padding_share": round(batches.padding_share(), 3),
              "matmul_peak_gflops": round(peak, 1), "mean_step_seconds": round(mean_step, 4),
              "training_gflops_per_s": round(padded / steps / mean_step / 1e9, 1),
              "mfu": round(padded / steps / mean_step / 1e9 / peak, 3),
              "useful_mfu": round(useful / steps / mean_step / 1e9 / peak, 3),
              "target_tokens_per_s": round(real_target / steps / mean_step),
              "source_plus_target_tokens_per_s": round((real_source + real_target) / steps / mean_step)}
    print(json.dumps(result, indent=2), flush=True)
    if args.timing_only:
        return result
    result["epochs_done"] = round(len(timer.step_times) / steps, 2)
    out = Path(flags["run_dir"]) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    for beam in (1, 4):  # greedy and beam search on the same test pairs
        app.config.beam_size = beam
        start = time.perf_counter()
        metrics = app.evaluate(model, out)
        result[f"evaluate_minutes_beam{beam}"] = round((time.perf_counter() - start) / 60, 1)
        result[f"beam{beam}"] = {k: metrics[k] for k in ("bleu", "bleu_multi_reference", "references_per_source",
                                                          "chrf", "token_accuracy", "bleu_signature", "chrf_signature")}
    short = [s for s, _ in app.prepared.splits["test"] if len(s.split()) <= 6][:100]
    for beam in (1, 4):
        app.config.beam_size = beam
        export = runner.export(app, Path(flags["run_dir"]) / f"export_beam{beam}")
        seconds = latency(export, short)
        result[f"latency_ms_beam{beam}"] = {"best": round(1000 * min(seconds), 1), "trials": [round(1000 * s, 1) for s in seconds]}
    result["latency_sentences"] = f"{len(short)} test sources of <= 6 words, batch of 1, median per trial"
    print(json.dumps(result, indent=2))
    (Path(flags["run_dir"]) / "bench_result.json").write_text(json.dumps(result, indent=2))
    return result


def main():
    from apps.transformer_translation.app import TransformerTranslationApp

    run(TransformerTranslationApp, RECIPE, forward_flops, arguments(__doc__.splitlines()[0]))


if __name__ == "__main__":
    main()
