"""Benchmark: face verification on the embedded AT&T faces, identity-disjoint (4 folds of 10 unseen people),
dlib's face ResNet zero-shot, fine-tuned with the app's defaults (semi-hard triplets) and a ResNet trained from
scratch; the losses
at equal training time; the SavedModel's embedding latency.

    .venv/bin/python bench/faces.py --out /tmp/faces.json             # ~15 min on 2 cores (quiet)
    .venv/bin/python bench/faces.py --max_folds 1 --skip_losses --skip_latency --epochs 1   # a quick check

Goals (issue): verification accuracy >= 97%, EER <= 3%, TAR >= 90% at FAR = 1e-2; embedding latency through
the SavedModel <= 5 ms per face (batch 1, median, 2 cores); training time stated.

Any `--key value` the script does not know is an app flag, given to every training run (`--epochs 1`).

Protocol. The 40 people are cut by the app's seeded permutation into 4 folds; for fold k the app runs with
`--data.folds 4 --data.test_fold k`: 10 test people (100 images) never seen in training, 30 training people
(300 images). After training, the trained embedder (apps.face_verification.model.embedder_of, batches of 64
through a tf.function) embeds the training and the test split. Thresholds are chosen on the TRAINING people's
pairs (verification.best_threshold: the most accurate one) and applied unchanged to the test people's pairs,
each on pairs of the same mix:
- accuracy on BALANCED test pairs (all 450 genuine pairs + a seeded sample of 450 of the 4,500 impostor pairs, as
  LFW balances its pairs), with the threshold best on balanced training pairs (all 1,350 genuine + a seeded
  1,350 of the 43,500 impostor pairs); the accuracy on ALL 4,950 test pairs, with the threshold best on all
  44,850 training pairs (1:32 genuine:impostor pushes that threshold down: it would cost balanced accuracy);
- AUC, EER and TAR at FAR = 1e-2 and 1e-3 on ALL test pairs (verification_report / tar_at_far; 4,500 impostor
  pairs per fold, so FAR 1e-3 rests on 4 false accepts at most), and pooled over the folds (the 4 folds' test
  distances concatenated: 1,800 genuine and 18,000 impostor pairs, accuracies pooled with each fold's own
  threshold; the pooled ROC mixes four networks' distance scales, so it is below the per-fold ones when those
  differ);
Reported per fold and as mean +- std (population std) over the folds.

Variants, each on every fold:
- dlib_zero_shot: the app's default model (dlib_face_resnet, dlib's weights, its own 256 -> 128 projection)
  built by the app's build_model, no training; threshold from the training people the same way.
- fine_tuned: the app's defaults (dlib_face_resnet with dlib's weights, semi-hard triplets, margin 0.2, AT&T
  portraits cropped to their bottom square, 10 epochs of P x K = 8 x 4 batches, Adam 1e-4 with 1 warm-up epoch
  then cosine) via runner.train. Thresholds come from the training people unless --data.val_identities N holds
  N of the training folds' people out of training: then from those (never trained on). Beside it
  (--inner_threshold N, default 10): the accuracy at the threshold of an inner run of the same recipe that
  holds N of the fold's 30 training people out of its training and takes the best threshold on their pairs;
  the test people are used by neither run. A user can set a threshold this way; the training people's own
  threshold is too tight once the network has learnt them (their pairs become separable).
- scratch: `--model.backbone resnet --model.weights none --data.image_size 96 --model.width 32
  --learning_rate 1e-3` (a from-scratch network needs a larger rate than fine-tuning's 1e-4), with as many
  epochs as fit in the fine-tune's fold-0 training time: a probe of --probe_epochs epochs on fold 0 (not
  counted) gives its fixed cost and time per epoch; a budget callback stops it at 1.1x that time.
- dlib_<loss> for each of --also_losses (default batch_hard,circle): the app's defaults with `--loss <loss>`, 10 epochs.

Losses at equal training time (fold 0 only): batch_hard, semi_hard (the default: the fine_tuned fold-0 run
itself), binary (the Siamese same/different head) and circle, each fine-tuning dlib for the app's 10 planned
epochs (cosine over them) but stopped by a wall-clock budget equal to fine_tuned's fold-0 training time; epochs done
are reported. The app gives --margin (0.2) to the triplet losses only: the binary pair loss has none and Circle
keeps keras' own (margin 0.4 on cosine similarity, gamma 80). A binary run's pairs are scored as the app scores
them, by its trained pair head's negated logit (model.pair_head_weights), not by the squared distance.

Latency: the fold-0 fine-tuned run exported by runner.export (its calibration = the training people's threshold),
loaded with tf.saved_model.load; one 92x112 AT&T face PNG at batch 1 to `serving_default`, --warmup calls,
then the median and min of --calls calls; `verify` on one pair the same way; the float32 matmul peak measured
in the same run for context; the breakdown: decoding, the network alone and the network under XLA, each timed
the same way as a tf.function. When the median is above 5 ms, the same network exported untrained at
--data.image_size 112 (dlib's arithmetic works down to 103 px) is timed too, latency only.

Training time: the wall time of runner.train (model building, tracing and checkpoints included) per fold
and variant.
"""
import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apps  # noqa: F401,E402  (sets TensorFlow's environment before it is imported)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import Budget, app_flags, configured_app, forward_flops, matmul_peak_gflops, time_calls  # noqa: E402

FOLDS = 4
SCRATCH = {"model.backbone": "resnet", "model.weights": None, "data.image_size": 96, "model.width": 32,
           "learning_rate": 1e-3}
LOSSES = ("batch_hard", "semi_hard", "binary", "circle")
GOALS = {"accuracy": 0.97, "eer": 0.03, "tar_at_far_1e-2": 0.90, "latency_ms": 5.0}
ALL = 10 ** 9  # impostor pairs asked for: more than there are, so every one is used


def make_app(flags, run_dir=None):
    from apps.face_verification.app import FaceVerification

    return configured_app(FaceVerification, flags, "bench-faces-", run_dir)


def train(app, seconds=None):
    """runner.train with a clock; (model, clock, wall seconds)."""
    from apps.core import runner

    clock = Budget(seconds)
    model = runner.train(app, extra_callbacks=[clock])
    return model, clock, time.perf_counter() - clock.start


def pair_set(labels, seed):
    """(i, j, same) of every genuine and every impostor pair of these images."""
    from apps.face_verification.verification import make_pairs

    a, b, same, _ = make_pairs(labels, folds=1, impostors_per_fold=ALL, seed=seed)
    return a, b, same


def balanced(same, seed):
    """Indices of every genuine pair and an equal seeded sample of the impostor pairs."""
    impostors = np.flatnonzero(~same)
    chosen = np.random.default_rng(seed).choice(impostors, int(same.sum()), replace=False)
    return np.r_[np.flatnonzero(same), np.sort(chosen)]


def score(app, model, seed):
    """Thresholds from the training folds' people (the held-out validation people when the run has
    --data.val_identities, else the people trained on), scores on the test people (see the docstring); plus
    the test distances and flags (for pooling) and the threshold pairs' distances."""
    from apps.face_verification.model import embedding_function, pair_head_weights

    embed, head = embedding_function(model, app.config.flip_test), pair_head_weights(model)
    train_set, test_set = app.splits["val"], app.splits["test"]
    if not len(train_set.labels):
        train_set = app.splits["train"]
    start = time.perf_counter()
    e_train, e_test = embed(train_set.images), embed(test_set.images)
    embed_seconds = time.perf_counter() - start
    from apps.face_verification.verification import pair_distances

    ta, tb, tsame = pair_set(train_set.labels, seed)
    a, b, same = pair_set(test_set.labels, seed)
    raw = {"d": pair_distances(e_test, a, b, head=head), "same": same, "d_train": pair_distances(e_train, ta, tb, head=head),
           "train_same": tsame}
    result, raw = scores_of(raw, seed)
    return {**result, "embed_seconds": round(embed_seconds, 2)}, raw


def scores_of(raw, seed):
    from apps.face_verification.verification import accuracy_at, best_threshold, verification_report

    d, same, d_train, tsame = raw["d"], raw["same"], raw["d_train"], raw["train_same"]
    tb, b = balanced(tsame, seed), balanced(same, seed + 1)
    threshold = best_threshold(d_train[tb], tsame[tb])  # balanced training pairs, as LFW's pairs are balanced
    threshold_all = best_threshold(d_train, tsame)  # every training pair (1:32): for the accuracy on every test pair
    report = verification_report(d, same, np.zeros(len(d), int))
    result = {"threshold": round(threshold, 4), "threshold_all_pairs": round(threshold_all, 4),
              "train_pairs": f"{int(tsame.sum())} genuine / {int((~tsame).sum())} impostor",
              "train_accuracy_balanced": round(accuracy_at(d_train[tb], tsame[tb], threshold), 4),
              "accuracy_balanced": round(accuracy_at(d[b], same[b], threshold), 4),
              "accuracy_all_pairs": round(accuracy_at(d, same, threshold_all), 4),
              "test_pairs": f"{int(same.sum())} genuine / {int((~same).sum())} impostor",
              "oracle_threshold_balanced_test": round(best_threshold(d[b], same[b]), 4),
              "oracle_accuracy_balanced_test": round(accuracy_at(d[b], same[b], best_threshold(d[b], same[b])), 4),
              "auc": round(report["auc"], 4), "eer": round(report["eer"], 6), "eer_threshold": round(report["eer_threshold"], 4),
              **_tars(report),
              "mean_genuine_distance": round(float(d[same].mean()), 4), "mean_impostor_distance": round(float(d[~same].mean()), 4)}
    raw = {**raw, "correct_balanced": (d[b] <= threshold) == same[b], "correct_all": (d <= threshold_all) == same}
    return result, raw


def inner_threshold(flags, k, seed, held_out):
    """The threshold a user can set without the test people: a run of the same recipe on fold k's training
    people less `held_out` of them (--data.val_identities), then the best threshold on the balanced pairs of
    those held-out people, whom that run never trained on. Returns (threshold, the run's training seconds)."""
    app = make_app({**fold_flags(flags, k), "data.val_identities": held_out})
    model, _, wall = train(app)
    scores, _ = score(app, model, seed)  # score takes its thresholds from the val people when there are any
    release(model)
    return scores["threshold"], wall


def at_threshold(raw, threshold, seed):
    """Balanced test accuracy of a fold's distances at `threshold` (the pairs scores_of balances)."""
    from apps.face_verification.verification import accuracy_at

    b = balanced(raw["same"], seed + 1)
    return round(accuracy_at(raw["d"][b], raw["same"][b], threshold), 4)


def _tars(report):
    out = {}
    for far, entry in report["tar_at_far"].items():
        out[f"tar_at_far_{far}"] = None if entry["tar"] is None else round(entry["tar"], 4)
        out[f"false_accepts_at_far_{far}"] = entry["false_accepts"]
    return out


def pooled(raw):
    from apps.face_verification.verification import verification_report

    d = np.concatenate([r["d"] for r in raw])
    same = np.concatenate([r["same"] for r in raw])
    report = verification_report(d, same, np.zeros(len(d), int))
    return {"pairs": f"{int(same.sum())} genuine / {int((~same).sum())} impostor",
            "accuracy_balanced": round(float(np.mean(np.concatenate([r["correct_balanced"] for r in raw]))), 4),
            "accuracy_all_pairs": round(float(np.mean(np.concatenate([r["correct_all"] for r in raw]))), 4),
            "auc": round(report["auc"], 4), "eer": round(report["eer"], 4), **_tars(report)}


def summary(runs, raw):
    keys = ("accuracy_balanced", "accuracy_balanced_inner_threshold", "oracle_accuracy_balanced_test",
            "accuracy_all_pairs", "auc", "eer", "tar_at_far_0.01", "tar_at_far_0.001",
            "threshold", "threshold_all_pairs", "train_seconds", "epochs_trained")
    out = {}
    for k in keys:
        values = [r[k] for r in runs if r.get(k) is not None]
        if values:
            out[k] = {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}
    out["pooled"] = pooled(raw)
    return out


def release(*objects):
    del objects
    keras.backend.clear_session()
    gc.collect()


def fold_flags(flags, k):
    return {"data.folds": FOLDS, "data.test_fold": k, **flags}


def scratch_epochs(flags, seconds, probe_epochs):
    """Epochs of the scratch network that fit in 97% of `seconds` of runner.train, from a probe on fold 0."""
    app = make_app({**fold_flags(SCRATCH, 0), **flags, "epochs": probe_epochs})
    _, clock, wall = train(app)
    ends = clock.epoch_ends
    per_epoch = statistics.median(np.diff(ends)) if len(ends) > 1 else ends[0]
    fixed = wall - len(ends) * per_epoch
    epochs = max(1, int((0.97 * seconds - fixed) / per_epoch))
    release()
    return epochs, {"probe_epochs": len(ends), "probe_seconds": round(wall, 1), "seconds_per_epoch": round(per_epoch, 2),
                    "fixed_seconds": round(fixed, 1), "budget_seconds": round(seconds, 1), "epochs": epochs}


def run_folds(args, flags):
    folds = list(range(FOLDS))[:args.max_folds or None]
    result = {"zero_shot": [], "fine_tuned": [], "scratch": []}
    extra = [f"dlib_{loss}" for loss in args.also_losses.split(",") if loss]
    result.update({name: [] for name in extra})
    raw = {k: [] for k in result}
    keep = {}
    for k in folds:
        app = make_app(fold_flags(flags, k))
        model = app.build_model()  # untrained: dlib's own descriptors
        zs, zraw = score(app, model, args.seed)
        result["zero_shot"].append({"fold": k, **zs})
        raw["zero_shot"].append(zraw)
        print("zero_shot", json.dumps(result["zero_shot"][-1]), flush=True)
        release(model)
        app = make_app(fold_flags(flags, k))
        model, clock, wall = train(app)
        bh, braw = score(app, model, args.seed)
        if args.inner_threshold:
            inner, inner_seconds = inner_threshold(flags, k, args.seed, args.inner_threshold)
            bh = {**bh, "inner_threshold": round(inner, 4), "inner_train_seconds": round(inner_seconds, 1),
                  "accuracy_balanced_inner_threshold": at_threshold(braw, inner, args.seed)}
        result["fine_tuned"].append({"fold": k, **bh, "train_seconds": round(wall, 1),
                                     "epochs_trained": len(clock.epoch_ends), "steps": clock.steps,
                                     "final_loss": _last_loss(app), "run_dir": str(app.run_dir)})
        raw["fine_tuned"].append(braw)
        print("fine_tuned", json.dumps(result["fine_tuned"][-1]), flush=True)
        if k == 0:
            keep = {"app": app, "train_seconds": wall, "raw": braw, "epochs": len(clock.epoch_ends)}
        release(model)
        for name in extra:  # the same fine-tuning with another loss (app defaults otherwise)
            app = make_app({**fold_flags(flags, k), "loss": name[5:]})
            model, clock, wall = train(app)
            sc, sraw = score(app, model, args.seed)
            result[name].append({"fold": k, **sc, "train_seconds": round(wall, 1), "epochs_trained": len(clock.epoch_ends),
                                 "final_loss": _last_loss(app), "run_dir": str(app.run_dir)})
            raw[name].append(sraw)
            print(name, json.dumps(result[name][-1]), flush=True)
            release(model)
    budget = keep["train_seconds"]
    scratch_folds = [] if args.skip_scratch else folds
    if scratch_folds and "epochs" in flags:
        epochs, sizing = int(flags["epochs"]), {"epochs": int(flags["epochs"]), "probe": "none (--epochs given)"}
    elif scratch_folds:
        epochs, sizing = scratch_epochs(flags, budget, args.probe_epochs)
    if scratch_folds:
        result["scratch_sizing"] = {**sizing, "flags": {k: v for k, v in SCRATCH.items()}}
    for k in scratch_folds:
        app = make_app({**fold_flags(SCRATCH, k), **flags, "epochs": epochs})
        model, clock, wall = train(app, budget * 1.1)
        sc, sraw = score(app, model, args.seed)
        result["scratch"].append({"fold": k, **sc, "train_seconds": round(wall, 1), "epochs_planned": epochs,
                                  "epochs_trained": len(clock.epoch_ends), "stopped_at_budget": clock.hit,
                                  "final_loss": _last_loss(app), "run_dir": str(app.run_dir)})
        raw["scratch"].append(sraw)
        print("scratch", json.dumps(result["scratch"][-1]), flush=True)
        release(model)
    result["mean"] = {name: summary(result[name], raw[name]) for name in result if raw.get(name)}
    return result, keep


def _last_loss(app):
    path = app.run_dir / "history.csv"
    if not path.is_file():
        return None
    lines = path.read_text().strip().splitlines()
    head, last = lines[0].split(","), lines[-1].split(",")
    row = dict(zip(head, last))
    return {k: round(float(v), 4) for k, v in row.items() if k in ("loss", "active_triplets", "active_triplet_fraction")}


def losses(args, flags, keep):
    """The loss table on fold 0 at the default fine-tune's fold-0 training time."""
    budget = keep["train_seconds"]
    rows = {}
    default = keep["app"].config.loss
    for loss in LOSSES:
        if loss == default:  # the fine_tuned fold-0 run itself
            app, wall, epochs, hit = keep["app"], budget, keep["epochs"], False
            scores, _ = scores_of(keep["raw"], args.seed)
            row = {"note": "the fine_tuned (app defaults) fold-0 run"}
        else:
            app = make_app({**fold_flags(flags, 0), "loss": loss})
            model, clock, wall = train(app, budget)
            scores, _ = score(app, model, args.seed)
            epochs, hit, row = len(clock.epoch_ends), clock.hit, {"steps": clock.steps, "final_loss": _last_loss(app)}
            release(model)
        rows[loss] = {**row, "accuracy_balanced": scores["accuracy_balanced"], "eer": scores["eer"],
                      "tar_at_far_0.01": scores["tar_at_far_0.01"], "auc": scores["auc"],
                      "threshold": scores["threshold"], "epochs": epochs, "stopped_at_budget": hit,
                      "train_seconds": round(wall, 1), "margin": margin_of(app.config)}
        print("loss", loss, json.dumps(rows[loss]), flush=True)
    return {"budget_seconds": round(budget, 1), "planned_epochs": keep["app"].config.epochs, "rows": rows,
            "circle": "keras.losses.Circle as the app builds it (keras' margin 0.4, gamma 80)"}


def margin_of(cfg):
    """The margin the app gives the loss: --margin for triplets, none for binary, keras' own for Circle."""
    from layers.losses.metric_learning import MININGS

    return cfg.margin if cfg.loss in MININGS else {"binary": None, "circle": "keras default 0.4 (gamma 80)"}[cfg.loss]


def serve_latency(export_dir, png, png2, args):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    serve, verify = loaded.signatures["serving_default"], loaded.signatures["verify"]
    one, a, b = tf.constant([png]), tf.constant([png]), tf.constant([png2])
    return {"serving_default_batch1": time_calls(lambda: serve(images=one)["embeddings"].numpy(), args.warmup, args.calls),
            "verify_one_pair": time_calls(lambda: verify(images_a=a, images_b=b)["distances"].numpy(), args.warmup, args.calls)}


def latency_breakdown(app, embedder, png, args):
    """Where serving_default's time goes, each part a tf.function called from Python on the same face: the
    decoding (request checks, decode, square crop, resize), the network alone, and the network compiled by
    XLA (jit_compile), the one change of the graph that might make it faster on CPU."""
    import tensorflow as tf

    from data.faces.pipeline import square_mode
    from data.images.decode import decode_image_batch

    one, size, square = tf.constant([png]), (app.size, app.size), square_mode(app.config.data)
    decode = tf.function(lambda b: decode_image_batch(b, size, 3, None, "images", square))
    faces = tf.cast(decode(one), tf.float32)
    network = tf.function(lambda x: embedder(x, training=False))
    network_xla = tf.function(lambda x: embedder(x, training=False), jit_compile=True)
    parts = {"decode": (decode, one), "network": (network, faces), "network_xla": (network_xla, faces),
             "empty_call": (tf.function(tf.identity), one)}  # the cost of calling a tf.function at all
    return {name: time_calls(lambda fn=fn, x=x: fn(x).numpy(), args.warmup, args.calls) for name, (fn, x) in parts.items()}


def latency(args, flags, keep):
    import tensorflow as tf

    from apps.core import runner
    from apps.face_verification.serving import FaceServing
    from apps.face_verification.model import embedder_of
    from data.faces.sources import load_embedded_faces

    faces = load_embedded_faces()
    png = tf.io.encode_png(faces.images[0]).numpy()  # 112 high x 92 wide, grey
    png2 = tf.io.encode_png(faces.images[10]).numpy()
    app, raw = keep["app"], keep.get("raw")
    model = runner.load_trained(app)
    if raw is not None:
        app._save_calibration(model, raw["d_train"], raw["train_same"], "bench/faces.py: the training people's pairs")
    export_dir = runner.export(app, Path(tempfile.mkdtemp(prefix="bench-faces-export-")))
    result = {"image": f"AT&T face PNG {faces.images.shape[2]}x{faces.images.shape[1]} grey ({len(png)} bytes)",
              "model": f"{app.config.model.backbone} fine-tuned (fold 0) at {app.size}x{app.size}",
              "export_dir": str(export_dir), **serve_latency(export_dir, png, png2, args)}
    embedder = embedder_of(model, app.config.flip_test)
    result["forward_gflops_per_face"] = round(forward_flops(embedder, (app.size, app.size, 3)) / 1e9, 3)
    result["breakdown"] = latency_breakdown(app, embedder, png, args)
    release(model)
    if result["serving_default_batch1"]["median_ms"] > GOALS["latency_ms"]:
        small = make_app({**fold_flags(flags, 0), "data.image_size": 112})
        model = small.build_model()
        module = FaceServing(embedder_of(model), 112, {"threshold": 1.0, "slope": -1.0, "intercept": 0.0})
        out = Path(tempfile.mkdtemp(prefix="bench-faces-export112-")) / "1"
        tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve, "verify": module.verify})
        result["untrained_at_112"] = {"note": "latency only: the same network exported untrained at --data.image_size 112",
                                      "forward_gflops_per_face": round(forward_flops(embedder_of(model), (112, 112, 3)) / 1e9, 3),
                                      **serve_latency(out, png, png2, args)}
        release(model, module)
    result["matmul_peak_gflops"] = round(matmul_peak_gflops(), 1)
    return result


def verdicts(result):
    """Each goal against the mean of the folds' own figures (their EER to 6 decimals), not the summary's mean rounded
    to 4 decimals, which passed an EER of 0.03005 as 0.03."""
    def mean(name, key):
        return float(np.mean([run[key] for run in result["folds"][name] if run.get(key) is not None]))

    out = {"accuracy_balanced >= 0.97": mean("fine_tuned", "accuracy_balanced") >= GOALS["accuracy"],
           "eer <= 0.03": mean("fine_tuned", "eer") <= GOALS["eer"],
           "tar@far=1e-2 >= 0.90": mean("fine_tuned", "tar_at_far_0.01") >= GOALS["tar_at_far_1e-2"]}
    for name in result["folds"]["mean"]:
        if name.startswith("dlib_"):
            out[f"{name}: accuracy_balanced >= 0.97 / eer <= 0.03 / tar@1e-2 >= 0.90"] = [
                mean(name, "accuracy_balanced") >= GOALS["accuracy"], mean(name, "eer") <= GOALS["eer"],
                mean(name, "tar_at_far_0.01") >= GOALS["tar_at_far_1e-2"]]
    if "latency" in result:
        out["latency median <= 5 ms"] = result["latency"]["serving_default_batch1"]["median_ms"] <= GOALS["latency_ms"]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--out", help="also write the JSON summary to this file")
    p.add_argument("--max_folds", type=int, default=0, help="run only the first N of the 4 folds (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sampling (the app's --seed is an app flag)")
    p.add_argument("--probe_epochs", type=int, default=3, help="scratch: epochs of the timing probe on fold 0")
    p.add_argument("--also_losses", default="batch_hard,circle",
                   help="comma-separated: also fine-tune dlib with these losses on every fold (variants dlib_<loss>)")
    p.add_argument("--skip_losses", action="store_true", help="no loss table")
    p.add_argument("--skip_scratch", action="store_true", help="no network from scratch")
    p.add_argument("--inner_threshold", type=int, default=10, metavar="N",
                   help="fine_tuned: also the accuracy at a threshold from an inner run that holds N of the fold's "
                        "training people out of training (0: off)")
    p.add_argument("--skip_latency", action="store_true", help="no SavedModel latency")
    p.add_argument("--latency_run", help="only the latency, of this trained run directory (e.g. a fold-0 run_dir "
                                         "of an earlier run)")
    p.add_argument("--warmup", type=int, default=5, help="latency: warm-up calls")
    p.add_argument("--calls", type=int, default=50, help="latency: timed calls")
    args, extra = p.parse_known_args()
    flags = app_flags(extra)
    start = time.perf_counter()
    result = {"flags": flags, "goals": GOALS}

    def save():  # after every part: a later failure keeps what was measured
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    if args.latency_run:
        from apps.core.config import load_saved_config
        from apps.face_verification.app import FaceVerification

        cfg = load_saved_config(FaceVerification.Config, Path(args.latency_run) / "config.json")
        result["latency"] = latency(args, flags, {"app": FaceVerification(cfg, args.latency_run)})
        result["wall_minutes"] = round((time.perf_counter() - start) / 60, 2)
        print(json.dumps(result, indent=2))
        return save()
    result["folds"], keep = run_folds(args, flags)
    save()
    if not args.skip_losses:
        result["losses"] = losses(args, flags, keep)
        save()
    if not args.skip_latency:
        result["latency"] = latency(args, flags, keep)
    result["verdicts"] = verdicts(result)
    result["wall_minutes"] = round((time.perf_counter() - start) / 60, 2)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
