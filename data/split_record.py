"""A run's split record: which files went to train, val and test, kept in the run directory.

Folder, VOC and COCO sources split by a seeded permutation of the files present, so the split of a
re-scanned folder moves as soon as a file is added or removed. The record, written once when a run's
splits are made, pins them: a resumed run and `evaluate` read exactly the recorded members, files
added since are ignored (and counted), files gone are reported (one warning with the count and the
first path; an error when a split has lost them all). Members are paths relative to the data folder,
so a data set that moved can be named again with --data.path.

Sources whose splits are fixed already (embedded, IDX, tfds, generated scenes) record only their
identity (`members` None): the recipe check still refuses evaluating on another data set by mistake.

    record = new_record("folder", {"seed": 0, ...}, ["cat", "dog"], {"train": [...], "val": [...], "test": [...]})
    write_record(record, run_dir / "data" / "splits.json")
"""
import json
import os
import tempfile
import warnings
from pathlib import Path

from data.errors import DataError

VERSION = 1


def new_record(source, recipe, class_names, members=None, unused=()):
    """`members`: {split: [member dict]} of a folder/annotation source, None for a fixed source;
    `unused`: members present when the record was made but in no split (bad files skipped, files past
    --data.limit), so that they are not counted as new later."""
    return {"version": VERSION, "source": source, "recipe": recipe, "class_names": list(class_names),
            "members": members, "unused": sorted(unused)}


def write_record(record, path):
    """Write the record as JSON through a temporary file in the same folder, flushed to disk and renamed
    into place: a reader finds the old record or the new one, never half of one. An OSError (full disk,
    read-only folder) names `path`, not the temporary file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        e.filename = str(path)
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def read_record(path):
    """The record at `path`, or None when there is none (a run made before records existed)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"the run's split record {path} is unreadable ({e}); train again in a new --run_dir") from None
    if not isinstance(record, dict) or record.get("version") != VERSION or "recipe" not in record:
        raise DataError(f"the run's split record {path} is not a version-{VERSION} record; train again in a new --run_dir")
    record["path"] = str(path)  # for messages; never written back
    return record


def recorded_or_fresh(record, source, recipe, recorded, fresh):
    """The splits of a run: `recorded()` when its record lists the members of this source (after refusing
    flags that would change them), else `fresh()`; a fixed set (tfds, scenes) of the record's source must be the
    one it names (its recipe). A record of another source does not apply (said)."""
    if record is not None and record["source"] == source:
        check_recipe(record, recipe)
        if record["members"] is not None:
            return recorded()
    elif record is not None and record["members"] is not None:
        print(f"the run was trained on source {record['source']!r}; its recorded splits do not apply to {source!r}")
    return fresh()


def check_recipe(record, recipe):
    """Refuse data flags that would change which files the run's splits hold."""
    before = record["recipe"]
    if before != recipe:
        keys = sorted(set(before) | set(recipe))
        changed = ", ".join(f"{k} {before.get(k)!r} -> {recipe.get(k)!r}" for k in keys if before.get(k) != recipe.get(k))
        raise DataError(f"the run's splits ({record.get('path', 'its split record')}) were made with other data flags ({changed}); "
                        "a run keeps its splits: drop those flags, or train in a new --run_dir")


def report_gone(split, gone, total, root):
    """One warning naming the count and the first missing member; an error when none is left."""
    if not gone:
        return
    if len(gone) == total:
        raise DataError(f"all {total} files of the run's {split} split are gone from {root}, e.g. {gone[0]}; "
                        "point --data.path at the data the run was trained on")
    warnings.warn(f"{len(gone)} of the {total} files of the run's {split} split are gone, e.g. {gone[0]}; "
                  f"using the other {total - len(gone)}", stacklevel=3)


def report_new(count, what):
    """Say how many files (`what`, e.g. "image file(s) under photos/") appeared since and are ignored."""
    if count:
        print(f"{count} {what} added since the run's splits were recorded are ignored")
