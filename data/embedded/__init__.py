"""The files shipped with the suite so that every app runs offline (see README.md in this folder)."""
from pathlib import Path

EMBEDDED_DIR = Path(__file__).parent


def embedded_file(name):
    """Path of an embedded file or folder, e.g. embedded_file("mnist_6k.npz")."""
    return EMBEDDED_DIR / name
