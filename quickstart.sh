#!/usr/bin/env bash
# Create .venv with the pinned dependencies, then run the main job: image classification on the
# embedded Fashion-MNIST subset (train, evaluate, export, predict). `--install-only` stops after set-up.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
[ "${1:-}" = "--install-only" ] && exit 0

app=(.venv/bin/python -m apps image_classification)
run=runs/quickstart
"${app[@]}" train --run_dir "$run" --epochs 10 --schedule cosine --seed 0
"${app[@]}" evaluate --run_dir "$run"
"${app[@]}" export --run_dir "$run"
"${app[@]}" predict data/embedded/samples/sneaker.png --run_dir "$run"
echo "done: curves $run/learning_curves.png, confusion matrix $run/eval/confusion_matrix.png, SavedModel under saved_models/image_classification/"
