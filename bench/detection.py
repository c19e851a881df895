"""Benchmark: object-detection mAP on held-out generated scenes and on the raccoon photos
(pretrained backbone fine-tuned vs the same network from scratch), with training time on this
machine and the exported SavedModel's throughput.

    .venv/bin/python bench/detection.py scenes            # goal: mAP@0.5 >= 0.90
    .venv/bin/python bench/detection.py raccoon           # goal: mAP@0.5 >= 0.70 (fine-tuned)
    .venv/bin/python bench/detection.py cv                # the default command in 5 folds of the raccoon photos:
                                                          # goal: mean mAP@0.5 >= 0.90, mAP@[.5:.95] >= 0.55

Raccoon: ../shared/data/detection/raccoon (200 photos, Pascal VOC XML), one seeded split of
160 training and 40 test images (data.test_fraction 0.2, no validation split, seed 0).
Cross-validation (cv): the app's defaults with nothing but the data's location and --data.test_fold k,
k = 0..4: five disjoint test parts of 40 photos, the app's own 10% validation split from the rest.
"""
import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCENES = {"model.width": 48, "model.depth": 2, "model.fpn_width": 96, "model.head_width": 96, "epochs": 30}
RACCOON = {"data.source": "voc", "data.image_size": 256, "data.val_fraction": 0.0, "data.test_fraction": 0.2,
           "model.backbone": "squeezenet", "model.anchor_size": 4.0, "batch_size": 16, "epochs": 30}


def train_and_evaluate(flags):
    """Train with the app's defaults plus `flags`, evaluate on the test split, export; figures as a dict."""
    from apps.core import runner
    from apps.core.config import apply_overrides
    from apps.object_detection.app import ObjectDetection
    from bench.common import StepTimer

    out = Path(tempfile.mkdtemp(prefix="bench-detection-"))
    app = ObjectDetection(apply_overrides(ObjectDetection.Config(), {"run_dir": str(out), "verbose": "line", **flags}))
    timer = StepTimer()
    start = time.perf_counter()
    model = runner.train(app, extra_callbacks=[timer])
    minutes = (time.perf_counter() - start) / 60
    (out / "eval").mkdir(exist_ok=True)
    report = app.evaluate(model, out / "eval")
    export_dir = runner.export(app, out / "export")
    test = app.splits["test"]
    return {
        "map_50": round(report["map_50"], 4), "map_50_95": round(report["map_50_95"], 4),
        "per_class_ap_50": {k: v["ap_50"] and round(v["ap_50"], 3) for k, v in report["per_class"].items()},
        "train_minutes": round(minutes, 2), "train_images": len(app.splits["train"]), "test_images": len(test),
        "train_images_per_second": round(app.config.batch_size / timer.steady_step_time(), 1),
        "savedmodel_images_per_second": savedmodel_throughput(export_dir, _encoded(test)),
        "run_dir": str(out),
    }


def cross_validate(path, folds, extra, only=None):
    """The default command on `path` (voc) in `folds` folds (or only the folds in `only`); per-fold figures,
    their mean and spread."""
    import numpy as np

    runs = []
    for k in only or range(folds):
        flags = {"data.source": "voc", "data.path": path, "data.test_fraction": 1 / folds, "data.test_fold": k, **extra}
        runs.append(train_and_evaluate(flags))
        print(json.dumps({"fold": k, **runs[-1]}), flush=True)
    summary = {}
    for key in ("map_50", "map_50_95", "train_minutes"):
        values = np.array([r[key] for r in runs])
        summary[key] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else None,
                        "min": float(values.min()), "max": float(values.max())}
    return {"folds": folds, "only_folds": only, "flags": extra, "summary": summary, "per_fold": runs}


def _encoded(dset):
    """The test images as the PNG bytes a client would send (canvases cropped back to each image's size)."""
    from PIL import Image

    files = []
    for canvas, scale, (h, w) in zip(dset.canvas, dset.scale, dset.image_hw):
        buffer = io.BytesIO()
        Image.fromarray(canvas[:round(h * scale[0]), :round(w * scale[1])]).save(buffer, "PNG")
        files.append(buffer.getvalue())
    return files


def savedmodel_throughput(export_dir, files, trials=3):
    """Best-of-`trials` images/second of the exported signature, one request per image and batches of 8."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    result = {}
    for batch in (1, 8):
        requests = [tf.constant(files[i:i + batch]) for i in range(0, len(files) - batch + 1, batch)]
        serve(images=requests[0])
        best = float("inf")
        for _ in range(trials):
            start = time.perf_counter()
            for r in requests:
                serve(images=r)["num_detections"].numpy()
            best = min(best, time.perf_counter() - start)
        result[f"batch_{batch}"] = round(len(requests) * batch / best, 1)
    return result


def main():
    from bench.common import SHARED

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["scenes", "raccoon", "cv"])
    p.add_argument("--folds", type=int, default=5, help="cv: folds (data.test_fraction 1/folds)")
    p.add_argument("--only_folds", help="cv: comma-separated folds to run (e.g. 0,2), to compare a flag quickly")
    p.add_argument("--flag", action="append", default=[], metavar="KEY=VALUE",
                   help="cv: a flag beside the defaults, e.g. model.arch=yolo (repeatable)")
    p.add_argument("--epochs", type=int, help="override the benchmark's epochs")
    p.add_argument("--freeze_epochs", type=int, default=3, help="raccoon, pretrained: epochs on a frozen backbone")
    p.add_argument("--skip_scratch", action="store_true", help="raccoon: only the fine-tuned run")
    p.add_argument("--yolo_weights", default=str(SHARED / "weights" / "yolov4-tiny-coco" / "yolov4-tiny.weights"),
                   help="raccoon: YOLOv4-tiny's darknet COCO weights, fine-tuned beside the RetinaNet-style detector "
                        "('' to skip)")
    p.add_argument("--only_yolo", action="store_true", help="raccoon: only the YOLOv4-tiny run")
    args = p.parse_args()
    if args.task == "cv":
        result = cross_validate(str(SHARED / "detection" / "raccoon"), args.folds,
                                dict(f.split("=", 1) for f in args.flag),
                                args.only_folds and [int(k) for k in args.only_folds.split(",")])
    elif args.task == "scenes":
        flags = {**SCENES, **({"epochs": args.epochs} if args.epochs else {})}
        result = {"flags": flags, "scenes": train_and_evaluate(flags)}
    else:
        flags = {**RACCOON, "data.path": str(SHARED / "detection" / "raccoon"), **({"epochs": args.epochs} if args.epochs else {})}
        result = {"flags": flags}
        if not args.only_yolo:
            result["fine_tuned"] = train_and_evaluate(
                {**flags, "model.weights": "imagenet", "model.freeze_epochs": args.freeze_epochs})
        if args.yolo_weights:
            result["yolov4_tiny_coco"] = train_and_evaluate(
                {**flags, "model.arch": "yolo", "model.weights": args.yolo_weights})
        if not args.skip_scratch and not args.only_yolo:
            result["from_scratch"] = train_and_evaluate(flags)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
