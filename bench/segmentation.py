"""Benchmark: semantic segmentation on held-out generated scenes, on the ISBI 2012 membrane set by k-fold
cross-validation (U-Net from scratch vs a pretrained encoder, with and without test-time augmentation),
training MFU, and the exported SavedModel's latency on a 512x512 image.

    .venv/bin/python bench/segmentation.py scenes      # goal: mean IoU >= 0.90 on the held-out test scenes
    .venv/bin/python bench/segmentation.py membrane    # goals: cell IoU >= 0.88, pixel error <= 0.09, <= 10 min/fold
    .venv/bin/python bench/segmentation.py latency     # goal: <= 1 s per 512x512 PNG (batch 1, median, 2 cores)

Any `--key value` after a sub-command's own options is an app flag (`--epochs 1 --data.train_scenes 40`);
`--out FILE` also writes the JSON summary to FILE.

scenes: the app's defaults (generated 128x128 scenes, U-Net width 16 depth 4, 8 epochs), evaluated on
the test scenes made only from the embedded test images. MFU = 3 x forward FLOPs of a training crop
(TensorFlow's graph profiler) x crops/s (median step time, callback timestamps) / the float32 matmul
peak measured in the same run.

membrane: ../shared/data/segmentation/membrane (30 images 512x512, 0/255 labels; class 1 "foreground"
= cells). The 30 images are split by a seeded permutation (--fold_seed) into --folds folds (5: 24 train /
6 test each, no validation); each fold's members are written as the run's split record before training,
so the app reads exactly them. The time budget (--minutes per fold, the wall time of runner.train:
model building, tracing, checkpoints included) is turned into epochs by measuring: a probe run of
--probe_epochs on fold 0 (not counted) gives the fixed cost and the time per epoch, and every fold then
trains the epochs that fit in 97% of the budget, so the cosine schedule runs to its end. A callback
stops any fold that still reaches the budget (reported as stopped_at_budget). Data flags (MEMBRANE):
256-pixel crops of the 512-pixel images (the U-Net's receptive field fits in a crop; a step costs a
quarter of whole images, and crop positions add variety to 24 images), flips and quarter turns (the
sections have no orientation), elastic deformation alpha 30 (displacements of ~8 px std, sigma 16),
as the U-Net paper relies on. Reported per fold and as the mean over folds: cell IoU, pixel error
(1 - max F1), adapted Rand error, without and with 8-view TTA.

latency: the SavedModel of --run_dir (else of the default U-Net trained 1 epoch on membrane: weights do
not change the time) gets a 512x512 membrane PNG, batch 1; the median of --calls after 3 warm-up calls.
"""
import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apps  # noqa: F401,E402  (sets TensorFlow's environment before it is imported)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import SHARED, Budget, StepTimer, app_flags, configured_app, forward_flops, matmul_peak_gflops  # noqa: E402

MEMBRANE_PATH = SHARED / "segmentation" / "membrane"
MEMBRANE = {"data.source": "folder", "data.path": str(MEMBRANE_PATH), "data.crop_size": 256, "data.rotate90": True,
            "data.elastic": 30, "data.val_fraction": 0.0, "keep_checkpoints": 1}
VARIANTS = {"scratch": {}, "pretrained": {"model.backbone": "squeezenet", "model.weights": "imagenet"}}
SCORES = ("foreground_iou", "pixel_error", "adapted_rand_error", "mean_iou", "predicted_foreground")


def make_app(flags, run_dir=None):
    from apps.semantic_segmentation.app import SemanticSegmentation

    return configured_app(SemanticSegmentation, flags, "bench-segmentation-", run_dir)


def train(app, seconds=None):
    """runner.train with a step timer and a clock; (model, timer, clock, wall seconds)."""
    from apps.core import runner

    timer, clock = StepTimer(), Budget(seconds)
    model = runner.train(app, extra_callbacks=[timer, clock])
    return model, timer, clock, time.perf_counter() - clock.start


def evaluate(app, model, name, tta=False):
    """The app's evaluate (with or without TTA) into <run_dir>/<name>/, metrics.json included."""
    app.config = dataclasses.replace(app.config, tta=tta)
    (app.run_dir / name).mkdir(exist_ok=True)
    report = app.evaluate(model, app.run_dir / name)
    (app.run_dir / name / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def rounded(report):
    return {k: None if report.get(k) is None else round(report[k], 4) for k in SCORES if k in report}


# ---- scenes ----

def scenes(flags):
    app = make_app(flags)
    model, timer, _, seconds = train(app)
    report = evaluate(app, model, "eval", tta=app.config.tta)
    crop, batch, step = app.config.data.crop_size, app.config.batch_size, timer.steady_step_time()
    flops = forward_flops(model, (crop, crop, 3))
    peak = matmul_peak_gflops()
    return {"flags": flags, "mean_iou": round(report["mean_iou"], 4), "pixel_accuracy": round(report["pixel_accuracy"], 4),
            "per_class_iou": {k: v and round(v, 4) for k, v in report["per_class_iou"].items()},
            "test_images": report["images"], "train_images": len(app.splits["train"]), "epochs": app.config.epochs,
            "train_minutes": round(seconds / 60, 2), "train_images_per_second": round(batch / step, 1),
            "forward_gflops_per_crop": round(flops / 1e9, 3), "matmul_peak_gflops": round(peak, 1),
            "mfu": round(3 * flops * batch / step / (peak * 1e9), 3), "run_dir": str(app.run_dir)}


# ---- membrane ----

def folds(k, seed):
    """k (train, test) lists of the membrane's image paths (relative to its folder), test folds disjoint."""
    from data.masks.sources import list_mask_folder

    files = np.array(list_mask_folder(MEMBRANE_PATH))
    parts = np.array_split(np.random.default_rng(seed).permutation(len(files)), k)
    return [(sorted(files[np.setdiff1d(np.arange(len(files)), p)]), sorted(files[p])) for p in parts]


def fold_app(flags, train_files, test_files):
    """An app whose run directory's split record holds exactly these train and test images."""
    from apps.core.splits import SPLIT_RECORD
    from data.masks.pipeline import split_recipe
    from data.masks.sources import BINARY_CLASSES
    from data.split_record import new_record, write_record

    app = make_app(flags)
    recipe = split_recipe(app.config.data, app.config.seed)
    members = {"train": [str(f) for f in train_files], "val": [], "test": [str(f) for f in test_files]}
    write_record(new_record("folder", recipe, BINARY_CLASSES, members), app.run_dir / SPLIT_RECORD)
    return app


def epochs_for(flags, split, seconds, probe_epochs):
    """Epochs that fit in 97% of `seconds` of runner.train, from a probe run of `probe_epochs` epochs."""
    app = fold_app({**flags, "epochs": probe_epochs}, *split)
    _, _, clock, wall = train(app)
    ends = clock.epoch_ends
    per_epoch = statistics.median(np.diff(ends)) if len(ends) > 1 else ends[0]
    fixed = wall - len(ends) * per_epoch
    epochs = max(1, int((0.97 * seconds - fixed) / per_epoch))
    return epochs, {"probe_epochs": len(ends), "probe_minutes": round(wall / 60, 2),
                    "seconds_per_epoch": round(per_epoch, 2), "fixed_seconds": round(fixed, 1), "epochs": epochs}


def membrane(args, flags):
    splits = folds(args.folds, args.fold_seed)
    result = {"flags": {**MEMBRANE, **flags}, "folds": args.folds, "fold_seed": args.fold_seed,
              "minutes_per_fold": args.minutes}
    for variant in args.variants.split(","):
        vflags = {**MEMBRANE, **VARIANTS[variant], **flags}
        if "epochs" in flags:
            epochs, sizing = int(flags["epochs"]), {"epochs": int(flags["epochs"]), "probe": "none (--epochs given)"}
        else:
            epochs, sizing = epochs_for(vflags, splits[0], args.minutes * 60, args.probe_epochs)
        runs = []
        for i, split in enumerate(splits[:args.max_folds or None]):
            app = fold_app({**vflags, "epochs": epochs}, *split)
            model, timer, clock, wall = train(app, args.minutes * 60)
            runs.append({"fold": i, "test": split[1], "epochs_trained": len(clock.epoch_ends),
                         "stopped_at_budget": clock.hit, "train_minutes": round(wall / 60, 2),
                         "train_crops_per_second": round(app.config.batch_size / timer.steady_step_time(), 1),
                         "plain": rounded(evaluate(app, model, "eval")),
                         "tta": rounded(evaluate(app, model, "eval_tta", tta=True)), "run_dir": str(app.run_dir)})
            print(json.dumps(runs[-1]))
            del model
            keras.backend.clear_session()
            gc.collect()
        mean = {view: {k: round(float(np.mean([r[view][k] for r in runs if r[view][k] is not None])), 4)
                       for k in runs[0][view]} for view in ("plain", "tta")}
        result[variant] = {"flags": VARIANTS[variant], "sizing": sizing, "mean": mean, "per_fold": runs}
    return result


# ---- latency ----

def latency(args, flags):
    import tensorflow as tf

    from apps.core import runner

    if args.run_dir:  # the run's own config, as `export` reads it
        from apps.core.config import load_saved_config
        from apps.semantic_segmentation.app import SemanticSegmentation

        cfg = load_saved_config(SemanticSegmentation.Config, Path(args.run_dir) / "config.json")
        app = SemanticSegmentation(cfg, args.run_dir)
    else:
        app = make_app({**MEMBRANE, "epochs": 1, **flags})
        train(app)
    png = (MEMBRANE_PATH / "image" / "0.png").read_bytes()
    result = {"model": f"{app.config.model.arch}_{app.config.model.backbone}", "image": "512x512 PNG", "calls": args.calls}
    for tta in ([False, True] if args.tta else [False]):
        app.config = dataclasses.replace(app.config, tta=tta)
        export_dir = runner.export(app, app.run_dir / ("export_tta" if tta else "export"))
        serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
        request = tf.constant([png])
        for _ in range(3):
            serve(images=request)["masks"].numpy()
        times = []
        for _ in range(args.calls):
            start = time.perf_counter()
            serve(images=request)["masks"].numpy()
            times.append(time.perf_counter() - start)
        result["tta" if tta else "plain"] = {"median_seconds": round(statistics.median(times), 3),
                                             "min_seconds": round(min(times), 3), "max_seconds": round(max(times), 3)}
    result["run_dir"] = str(app.run_dir)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("task", choices=["scenes", "membrane", "latency"])
    p.add_argument("--out", help="also write the JSON summary to this file")
    p.add_argument("--folds", type=int, default=5, help="membrane: k of the k-fold cross-validation")
    p.add_argument("--max_folds", type=int, default=0, help="membrane: run only the first N folds (0: all)")
    p.add_argument("--fold_seed", type=int, default=0, help="membrane: seed of the fold assignment")
    p.add_argument("--minutes", type=float, default=10.0, help="membrane: training budget per fold")
    p.add_argument("--probe_epochs", type=int, default=6, help="membrane: epochs of the timing probe")
    p.add_argument("--variants", default="scratch,pretrained", help="membrane: comma-separated, of " + ",".join(VARIANTS))
    p.add_argument("--run_dir", help="latency: a trained run to export (default: a 1-epoch membrane U-Net)")
    p.add_argument("--calls", type=int, default=25, help="latency: timed calls")
    p.add_argument("--tta", action="store_true", help="latency: also time the 8-view TTA export")
    args, extra = p.parse_known_args()
    flags = app_flags(extra)
    if args.task == "membrane" and not set(args.variants.split(",")) <= set(VARIANTS):
        p.error(f"--variants: choose from {', '.join(VARIANTS)}")
    result = {"scenes": lambda: scenes(flags), "membrane": lambda: membrane(args, flags),
              "latency": lambda: latency(args, flags)}[args.task]()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
