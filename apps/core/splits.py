"""Recorded splits for apps whose data are files: the splits made when a run starts are written to the run
directory (data/splits.json, data/split_record.py), and a resumed run and `evaluate` get exactly them back."""
from apps.core.errors import UserError
from data.split_record import read_record, write_record

SPLIT_RECORD = "data/splits.json"  # in the run directory
SPLITS = ("train", "val", "test")


class RecordedSplits:
    """Mixed into an App before App: `self.splits` ({train, val, test}), `self.test_split()` and
    `self.record_splits()` (call it from `state()`: the runner calls that on the chief alone).

    The app supplies `load_splits(record, names)` (its data pipeline's loader) and
    `make_split_record(splits)`; `file_sources` names the data sources whose splits are made from the
    files present (the others, generated or fixed sets, record only their identity)."""

    file_sources = ()

    def load_splits(self, record, names):
        raise NotImplementedError

    def make_split_record(self, splits):
        raise NotImplementedError

    @property
    def splits(self):
        if getattr(self, "_splits", None) is None:
            self._splits = self._read_splits(SPLITS)
            self.class_names = self._splits["train"].class_names
        return self._splits

    def _read_splits(self, names):
        record = read_record(self.run_dir / SPLIT_RECORD)
        # whether the run's record describes these splits (so that training keeps it as it is)
        self._recorded = record is not None and record["source"] == self.config.data.source
        return self.load_splits(record, names)

    def test_split(self):
        """The test split alone (evaluate), from the record when the run has one."""
        if getattr(self, "_splits", None) is not None:
            return self._splits["test"]
        if self.config.data.source in self.file_sources and not (self.run_dir / SPLIT_RECORD).is_file():
            print(f"note: the run has no split record ({self.run_dir / SPLIT_RECORD}; older runs lack it): "
                  "its test split is made again from the files present now")
        return self._read_splits(("test",))["test"]

    def refuse_other_classes(self, test, by_count=False):
        """Evaluate scores labels by position: a test split whose classes are not the model's is refused, naming
        the first differences (`by_count`: a source that names no classes, compared by their number)."""
        same = len(test.class_names) == len(self.class_names) if by_count else test.class_names == self.class_names
        if not same:
            data = self.config.data
            where = f"--data.path {data.path}" if data.path else f"--data.source {data.source}"
            raise UserError(f"the classes of {where} are not the model's (data vs model: "
                            f"{_differences(test.class_names, self.class_names)}); evaluate on data with the classes "
                            "the run was trained on")

    def record_splits(self):
        """Write the splits made now to the run directory (atomically); recorded ones stay as they are."""
        splits = self.splits
        if not self._recorded:
            write_record(self.make_split_record(splits), self.run_dir / SPLIT_RECORD)
            self._recorded = True


def _differences(data, model, most=3):
    """The class counts if they differ, and the first `most` positions where two class lists differ."""
    name = lambda names, i: repr(names[i]) if i < len(names) else "none"  # noqa: E731
    diffs = [f"#{i} {name(data, i)} vs {name(model, i)}" for i in range(max(len(data), len(model)))
             if name(data, i) != name(model, i)]
    counts = [f"{len(data)} classes vs {len(model)}"] if len(data) != len(model) else []
    return ", ".join(counts + diffs[:most]) + (", ..." if len(diffs) > most else "")
