"""Benchmark: pretrained backbones fine-tuned from their ImageNet weights vs the same networks from scratch.

Data: the natural-photo class folders ../shared/data/classification/cifar10-3k (3,000 CIFAR-10
JPEGs), seeded per-class split (15% test, 15% of the rest validation), upscaled to 96x96. Every run
gets the same epochs, optimizer and augmentation; a pretrained one trains its head on the frozen
backbone first, then unfreezes the top layers (the shared fine-tuning options of every vision app).

    .venv/bin/python bench/finetune_cifar.py --archs squeezenet,efficientnet_lite0 --epochs 8
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(arch, pretrained, args):
    from apps.core import runner
    from apps.core.config import apply_overrides
    from apps.image_classification.app import ImageClassification
    from bench.common import SHARED

    flags = {
        "run_dir": tempfile.mkdtemp(prefix=f"bench-{arch}-"), "epochs": args.epochs, "batch_size": 32,
        "learning_rate": 1e-3, "seed": 0, "verbose": "line",
        "data.source": "folder", "data.path": str(SHARED / "classification" / "cifar10-3k"),
        "data.image_size": args.image_size, "data.test_fraction": 0.15, "data.val_fraction": 0.15,
        "model.arch": arch, "model.dropout": 0.3,
        "model.weights": "imagenet" if pretrained else None,
    }
    if pretrained:
        flags.update({"model.freeze_epochs": args.freeze_epochs, "model.unfreeze_layers": args.unfreeze_layers})
    app = ImageClassification(apply_overrides(ImageClassification.Config(), flags))
    start = time.perf_counter()
    model = runner.train(app)
    minutes = (time.perf_counter() - start) / 60
    report = app.evaluate(model, Path(flags["run_dir"]))
    return {"test_accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4),
            "train_minutes": round(minutes, 2), "test_images": report["examples"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="squeezenet,efficientnet_lite0", help="comma-separated pretrained backbones")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--image_size", type=int, default=96)
    p.add_argument("--freeze_epochs", type=int, default=3)
    p.add_argument("--unfreeze_layers", default="4", help="layer count or 'all'")
    p.add_argument("--skip_scratch", action="store_true", help="only the pretrained runs")
    args = p.parse_args()
    result = {"epochs": args.epochs, "image_size": args.image_size, "freeze_epochs": args.freeze_epochs,
              "unfreeze_layers": args.unfreeze_layers}
    for arch in args.archs.split(","):
        result[arch] = {"pretrained": run(arch, True, args)}
        if not args.skip_scratch:
            result[arch]["from_scratch"] = run(arch, False, args)
        print(json.dumps({arch: result[arch]}), flush=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
