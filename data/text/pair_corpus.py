"""A run's prepared translation data: the split pairs and the two subword models, on disk.

`prepare` reads, normalises, deduplicates and splits the pairs and trains one SentencePiece model per
language on the training split only, then writes train/dev/test.tsv, source.model, target.model and
manifest.json into the run's data folder (through a temporary folder, moved into place). A resumed,
evaluated or exported run reads that folder back, so it always sees the split and the vocabulary it
was trained with.

    prepared = prepare(TranslationDataConfig(), Path("runs/x/data"), seed=0)
    batches = bucketed(prepared, "train", max_length=40, tokens_per_batch=4096)
"""
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from data.errors import DataError
from data.text.subword import Subwords, train_sentencepiece
from data.text.pair_batches import BucketedPairs, within_length
from data.text.pairs import read_pairs, split_pairs

SPLITS = ("train", "dev", "test")
_RECIPE = ("source", "path", "target_path", "tfds_name", "data_dir", "tfds_split", "reverse", "skip_bad_lines",
           "max_pairs", "dev_size", "test_size", "vocab_size")


@dataclasses.dataclass
class PreparedPairs:
    directory: Path
    splits: dict  # name -> [(source, target)]
    source: Subwords
    target: Subwords


def _recipe(cfg, seed):
    return {"seed": seed, **{k: getattr(cfg, k) for k in _RECIPE}}


def prepare(cfg, directory, seed):
    """The prepared data of `directory`, made now if absent; refused if made with another recipe."""
    directory = Path(directory)
    manifest = directory / "manifest.json"
    if manifest.is_file():
        before, now = json.loads(manifest.read_text())["recipe"], _recipe(cfg, seed)
        if before != now:
            changed = ", ".join(f"{k} {before.get(k)!r} -> {now[k]!r}" for k in now if before.get(k) != now[k])
            raise DataError(f"{directory} was prepared with other data flags ({changed}); the run's vocabulary and split "
                            f"must not change: use a new --run_dir, or delete {directory.parent} to start over")
        return load(directory)
    pairs = read_pairs(cfg)
    splits = split_pairs(pairs, cfg.dev_size, cfg.test_size, seed)
    train = splits["train"]
    source = train_sentencepiece([s for s, _ in train], cfg.vocab_size, seed)
    target = train_sentencepiece([t for _, t in train], cfg.vocab_size, seed)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-data-", dir=directory.parent))
    try:
        for name in SPLITS:
            (tmp / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in splits[name]), encoding="utf-8")
        (tmp / "source.model").write_bytes(source)
        (tmp / "target.model").write_bytes(target)
        counts = {name: len(splits[name]) for name in SPLITS}
        (tmp / "manifest.json").write_text(json.dumps({"recipe": _recipe(cfg, seed), "pairs": counts}, indent=2) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"pairs: {len(pairs):,} after deduplication; train {counts['train']:,}, dev {counts['dev']:,}, "
          f"test {counts['test']:,} (split by source sentence, seed {seed})")
    return load(directory)


def load(directory):
    directory = Path(directory)
    missing = [n for n in ("manifest.json", "source.model", "target.model", *(f"{s}.tsv" for s in SPLITS))
               if not (directory / n).is_file()]
    if missing:
        raise DataError(f"the run's prepared data in {directory} lacks {', '.join(missing)}; train again")
    splits = {}
    for name in SPLITS:
        lines = (directory / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
        splits[name] = [tuple(line.split("\t", 1)) for line in lines]
    return PreparedPairs(directory, splits, Subwords((directory / "source.model").read_bytes()),
                         Subwords((directory / "target.model").read_bytes()))


def encode_split(prepared, split):
    pairs = prepared.splits[split]
    return prepared.source.encode(s for s, _ in pairs), prepared.target.encode(t for _, t in pairs)


def bucketed(prepared, split, max_length, tokens_per_batch):
    """BucketedPairs of a split, pairs longer than max_length dropped (and counted)."""
    source_ids, target_ids = encode_split(prepared, split)
    keep = within_length(source_ids, target_ids, max_length)
    if len(keep) < len(source_ids):
        print(f"{split}: {len(source_ids) - len(keep):,} of {len(source_ids):,} pairs are longer than "
              f"--data.max_length {max_length} tokens and are left out")
    return BucketedPairs([source_ids[i] for i in keep], [target_ids[i] for i in keep], tokens_per_batch, max_length)
