"""Run files that survive a crash, a full disk and a second trainer.

A file is written under a temporary name in its own folder, flushed to disk and renamed over the
old one, so a reader finds the old file or the new one, never half of one. A failed write (full
disk, read-only folder) is one line naming the path. One trainer at a time holds a run directory's
lock; the kernel releases it when the process ends, however it ends.

    atomic_write_text(run / "state.json", json.dumps(state))
    with run_lock(run):
        ...  # train
"""
import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path

from apps.core.errors import UserError

LOCK_NAME = "train.lock"


def os_error_message(e, action=None):
    """One line for an OSError: the path, what went wrong and, for the usual causes, what to do."""
    where = str(e.filename) if e.filename else "a file"
    text = f"cannot {action} {where}: {e.strerror or e}" if action else f"{where}: {e.strerror or e}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return text + "; free some space and run the command again (the last good checkpoint is kept)"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return text + "; the run directory is not writable: pass another --run_dir"
    return text


# What a TensorFlow file error (TensorBoard's event files) says, as the errno an OSError would carry.
_TF_CAUSES = (("no space left", errno.ENOSPC), ("quota", errno.EDQUOT), ("read-only file system", errno.EROFS),
              ("permission denied", errno.EACCES))


def write_error_message(e, path):
    """One line for a failed write to `path`: an OSError, which need not name its file (a full disk is often
    met when a buffer is flushed), or a TensorFlow error ("{{function_node ...}} logs/...; No space left on
    device [Op:WriteSummary]"), whose first line says why."""
    if isinstance(e, OSError):
        return os_error_message(OSError(e.errno, e.strerror or str(e), str(path)), "write")
    text = str(getattr(e, "message", e)).strip()
    first = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", text.splitlines()[0] if text else type(e).__name__).strip()
    code = next((n for words, n in _TF_CAUSES if words in first.lower()), None)
    return os_error_message(OSError(code, first.rsplit("; ", 1)[-1], str(path)), "write")


def atomic_write_text(path, text):
    """Write `text` to `path` through a temporary file in the same folder, then rename it over `path`;
    an OSError becomes a UserError naming the path (the old file, if any, is left as it was)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path, data):
    """Write `data` (bytes) to `path` through a temporary file in the same folder, flushed to disk and
    renamed over `path`: a reader finds the old file or the new one, never half of one. An OSError becomes
    a UserError naming `path`, not the temporary file."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        e.filename = str(path)  # the file the user knows, not the temporary name
        raise UserError(os_error_message(e, "write")) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


@contextlib.contextmanager
def run_lock(directory):
    """Hold `directory`'s lock (fcntl.flock on train.lock) while training; a second trainer is refused
    in one line. A dead process holds nothing: the kernel drops the lock with its file descriptors."""
    path = Path(directory) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(os_error_message(e, "write")) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise UserError(f"another process (pid {holder or '?'}) is training in {directory}; wait for it to end, "
                            "or use another --run_dir") from None
        with contextlib.suppress(OSError):  # the pid only makes the refusal clearer
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


_LEFTOVER = re.compile(r"^(\.tmp-.*|ckpt-\d+_temp|checkpoint\.tmp.*)$")  # ours (.tmp-*) and TensorFlow's checkpoint temporaries


def remove_leftovers(directory, folders=("", "checkpoints", "data", "corpus")):
    """Delete the temporary files and folders that a killed save leaves behind (their `finally` never ran)
    in `directory` and its run sub-folders; call it holding the run's lock, so no save is under way.
    Returns how many were removed."""
    removed = 0
    for folder in folders:
        where = Path(directory) / folder
        if not where.is_dir():
            continue
        for entry in where.iterdir():
            if _LEFTOVER.match(entry.name):
                with contextlib.suppress(OSError):
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                    removed += 1
    return removed
