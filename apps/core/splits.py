"""Recorded splits for apps whose data are files: the splits made when a run starts are written to the run
directory (data/splits.json, data/split_record.py), and a resumed run and `evaluate` get exactly them back."""
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

    def record_splits(self):
        """Write the splits made now to the run directory (atomically); recorded ones stay as they are."""
        splits = self.splits
        if not self._recorded:
            write_record(self.make_split_record(splits), self.run_dir / SPLIT_RECORD)
            self._recorded = True
