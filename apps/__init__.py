"""Task apps of the suite: `python -m apps <app> <verb>`; see README.md."""
import os

# oneDNN kernels: TensorFlow turns them on only on some CPUs (not on AVX2-only ones). Measured here
# (bench/classification_fashion_mnist.py --compare_onednn) CNN training is 1.63x faster with them.
# Takes effect only if TensorFlow is imported after `apps`; set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
# The command line hides the banner TensorFlow prints about it (`--verbose debug` shows it; apps/__main__.py).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
