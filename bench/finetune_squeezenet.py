"""Benchmark: SqueezeNet fine-tuned from its ImageNet weights vs the same network from scratch.

Data: the natural-photo class folders ../shared/data/classification/cifar10-3k (3,000 CIFAR-10
JPEGs), seeded per-class split (15% test, 15% of the rest validation), upscaled to 96x96. Both
runs get the same epochs, optimizer and augmentation; the pretrained one trains its head on the
frozen backbone first, then unfreezes the top layers.

    .venv/bin/python bench/finetune_squeezenet.py --epochs 8
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(pretrained, args):
    from apps.core import runner
    from apps.core.config import apply_overrides
    from apps.image_classification.app import ImageClassification
    from bench.common import SHARED

    flags = {
        "run_dir": tempfile.mkdtemp(prefix="bench-squeezenet-"), "epochs": args.epochs, "batch_size": 32,
        "learning_rate": 1e-3, "seed": 0, "verbose": "line",
        "data.source": "folder", "data.path": str(SHARED / "classification" / "cifar10-3k"),
        "data.image_size": args.image_size, "data.test_fraction": 0.15, "data.val_fraction": 0.15,
        "model.arch": "squeezenet", "model.dropout": 0.3,
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
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--image_size", type=int, default=96)
    p.add_argument("--freeze_epochs", type=int, default=3)
    p.add_argument("--unfreeze_layers", type=int, default=4)
    args = p.parse_args()
    result = {"epochs": args.epochs, "image_size": args.image_size,
              "pretrained": run(True, args), "from_scratch": run(False, args)}
    result["pretrained_wins"] = result["pretrained"]["test_accuracy"] > result["from_scratch"]["test_accuracy"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
