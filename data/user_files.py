"""Which files under a user's folder are theirs: every folder reader (images, boxes, masks, text) lists files here."""
import os
from pathlib import Path

SYSTEM_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini"}  # Windows Explorer's own (macOS's start with a dot)


def is_user_file(path):
    """A file a person put there: not hidden (.DS_Store, ._x.jpg) and not one the file manager wrote."""
    return path.is_file() and not path.name.startswith(".") and path.name.lower() not in SYSTEM_FILES


def user_files(folder):
    """The user files (is_user_file) under `folder` at any depth, sorted; hidden folders such as
    .ipynb_checkpoints or .git are not entered (copies and history, not data)."""
    found = []
    for parent, folders, names in os.walk(folder):
        folders[:] = [f for f in folders if not f.startswith(".")]
        found += [p for p in (Path(parent) / n for n in names) if is_user_file(p)]
    return sorted(found)
