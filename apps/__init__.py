"""Task apps of the suite: `python -m apps <app> <verb>`; see README.md."""
import os

# oneDNN kernels: TensorFlow turns them on only on some CPUs (not on AVX2-only ones). Measured here
# (bench/classification_fashion_mnist.py --compare_onednn) CNN training is 1.63x faster with them.
# Takes effect only if TensorFlow is imported after `apps`; set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
