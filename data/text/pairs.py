"""Sentence pairs for translation: read, normalised, deduplicated and split.

Sources: the embedded Anki English-Spanish subset, any Anki-style TSV file (source, tab, target;
extra columns such as Anki's attribution are ignored), two parallel plain-text files (line i of
one translates line i of the other), or a prepared tfds translation set (e.g. ted_hrlr_translate/pt_to_en).

Every sentence is normalised by data.text.normalize (NFKC, whitespace folded to single spaces; case
and punctuation kept, since BLEU is scored on the text people read). Exact duplicate pairs are
dropped. The split is seeded and made by *source sentence*: all pairs that share a source go to
the same split, so no test source sentence is ever seen in training.

    pairs = read_pairs(TranslationDataConfig())            # the embedded 30,000 pairs
    splits = split_pairs(pairs, dev_size=500, test_size=2000, seed=0)
"""
import dataclasses
import re
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from data.embedded import embedded_file
from data.errors import DataError
from data.fields import field
from data.text.corpus import check_utf8, open_binary
from data.text.normalize import normalize
from data.tfds_sets import open_tfds

EMBEDDED_PAIRS = embedded_file("spa_eng_30k.tsv.gz")


@dataclasses.dataclass
class TranslationDataConfig:
    source: str = field("embedded", "embedded Anki en-es subset, a TSV file, two parallel files, or a tfds set",
                        ["embedded", "tsv", "parallel", "tfds"])
    path: Optional[str] = field(None, "tsv: the pairs file; parallel: the source-language file (UTF-8, .gz allowed)")
    target_path: Optional[str] = field(None, "parallel: the target-language file, line i translating line i of --data.path")
    tfds_name: Optional[str] = field(None, "tfds translation set, e.g. ted_hrlr_translate/pt_to_en (source tfds)")
    data_dir: Optional[str] = field(None, "tfds data_dir holding the prepared set (source tfds)")
    tfds_split: str = field("train", "tfds split whose pairs are read (and then split like any source)")
    reverse: bool = field(False, "translate the second column (or --data.target_path) into the first")
    skip_bad_lines: bool = field(False, "skip empty lines and lines without a tab (counted) instead of failing")
    max_pairs: int = field(0, "use only the first N pairs (0: all)", min=0)
    dev_size: int = field(500, "pairs held out for validation (whole source groups, so about N)", min=1)
    test_size: int = field(1000, "pairs held out for the test (whole source groups, so about N)", min=1)
    vocab_size: int = field(4000, "subword vocabulary per language (SentencePiece unigram)", min=16)
    max_length: int = field(40, "longest sequence in subword tokens (with the end token); longer training pairs are dropped",
                            min=2)


def _lines(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"translation file not found: {path}")
    check_utf8([path], lone_cr_lines=True)
    with open_binary(path) as f:
        text = f.read().decode("utf-8-sig")  # a byte-order mark (Notepad, Excel) is not text
    # Lines end at \n (a \r before it is dropped), as `wc -l` and the aligned files of parallel corpora count
    # them: a stray \r inside a crawled sentence is a space, not a line break. Old Mac files end lines with \r.
    lines = text.split("\n") if "\n" in text else text.split("\r")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if lines[-1] == "":
        lines.pop()  # the file's final newline
    return lines


def _bad(path, number, what, skip, skipped):
    if not skip:
        raise DataError(f"{path}: line {number} {what}; fix the file or pass --data.skip_bad_lines to skip such lines")
    skipped.append(number)


_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}([_-][A-Za-z0-9]+)*")


def _sentence_columns(path, lines):
    """The two sentence columns of a TSV: (0, 1) as Anki's files have them (an attribution column after them),
    (1, 3) in tatoeba.org's pair exports (id, sentence, id, translation), (2, 3) in Tatoeba-Challenge files
    (language, language, sentence, translation); said when not (0, 1)."""
    sample = [line.split("\t") for line in lines[:200] if line.strip()]
    rows = [r for r in sample if len(r) >= 4]  # a stray short line among them is named when it is read
    if not rows or len(rows) < 0.9 * len(sample):
        return 0, 1
    if all(r[0].strip().isdigit() and r[2].strip().isdigit() for r in rows):
        columns, what = (1, 3), "sentence id, sentence, id, translation (tatoeba.org's pair export)"
    elif all(_LANGUAGE_CODE.fullmatch(r[k]) for r in rows for k in (0, 1)):  # eng-zho: cmn_Hans, cmn_Hant, yue_Hant
        codes = [", ".join(sorted({r[k] for r in rows})[:3]) for k in (0, 1)]
        columns, what = (2, 3), f"language ({codes[0]}), language ({codes[1]}), sentence, translation"
    else:
        return 0, 1
    print(f"{path}: columns read as {what}: sentences from columns {columns[0] + 1} and {columns[1] + 1}")
    return columns


# Words a spreadsheet's first row names its columns with (or language codes: en, es, pt_BR)
_HEADER_WORDS = {"source", "target", "src", "tgt", "input", "output", "sentence", "sentences", "translation",
                 "translations", "text", "english", "spanish", "french", "german", "italian", "portuguese", "russian",
                 "chinese", "japanese", "korean", "arabic", "hindi", "dutch", "turkish", "polish", "swedish",
                 "vietnamese", "indonesian", "greek", "czech", "hebrew", "ukrainian", "romanian", "hungarian",
                 "finnish", "danish", "norwegian", "thai", "persian", "catalan"}


def _is_header(source, target):
    """Whether a TSV's first row names its columns ("english<TAB>spanish", "src<TAB>tgt") rather than a pair."""
    return all(n.strip().lower() in _HEADER_WORDS or _LANGUAGE_CODE.fullmatch(n.strip()) for n in (source, target))


_CSV_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def _quoted_as_csv(path, lines, columns):
    """Whether the sentence fields were written with CSV quoting (pandas' to_csv, spreadsheets): every field
    holding a quote is wrapped in quotes with its own quotes doubled, and some field shows it (a doubled quote
    inside, or every field wrapped). A sentence that merely starts and ends with a quote is no such sign."""
    fields = [f for line in lines for i, f in enumerate(line.split("\t")) if i in columns]
    quoted = [f for f in fields if '"' in f]
    if not quoted or not all(_CSV_QUOTED.fullmatch(f) for f in quoted):
        return False
    if not any('""' in f[1:-1] for f in quoted) and len(quoted) < len(fields):
        return False
    print(f'{path}: sentences read as CSV-quoted ("..." around a field, "" for a quote inside it)')
    return True


def read_tsv(path, skip_bad_lines=False):
    """[(source, target)] of a TSV file: its first two columns (Anki's layout; extra columns are ignored), or
    the sentence columns of Tatoeba's exports (see _sentence_columns); a first row of column names is left out,
    and fields written with CSV quoting are unquoted."""
    pairs, skipped = [], []
    lines = _lines(path)
    first, second = _sentence_columns(path, lines)
    if _quoted_as_csv(path, lines, (first, second)):
        lines = ["\t".join(f[1:-1].replace('""', '"') if _CSV_QUOTED.fullmatch(f) else f for f in line.split("\t"))
                 for line in lines]
    head = lines[0].split("\t") if lines else []
    start = 1
    if len(head) > second and _is_header(head[first], head[second]):
        print(f"{path}: line 1 ({lines[0].strip()!r}) names the columns: left out")
        start = 2
    for number, line in enumerate(lines[start - 1:], start):
        if not line.strip():
            _bad(path, number, "is empty", skip_bad_lines, skipped)
            continue
        columns = line.split("\t")
        if len(columns) <= second:
            _bad(path, number, "has no tab (expected: source<TAB>target)" if len(columns) < 2 else
                 f"has {len(columns)} columns, not the {second + 1} of the lines before", skip_bad_lines, skipped)
            continue
        source, target = normalize(columns[first]), normalize(columns[second])
        if not source or not target:
            _bad(path, number, f"has an empty {'source' if not source else 'target'} sentence", skip_bad_lines, skipped)
            continue
        pairs.append((source, target))
    _report_skipped(path, skipped)
    return pairs


def read_parallel(source_path, target_path, skip_bad_lines=False):
    """[(line i of source_path, line i of target_path)]; the files must have the same number of lines."""
    sources, targets = _lines(source_path), _lines(target_path)
    if len(sources) != len(targets):
        short, long_ = (source_path, target_path) if len(sources) < len(targets) else (target_path, source_path)
        n = min(len(sources), len(targets))
        raise DataError(f"parallel files differ in length: {source_path} has {len(sources)} lines, {target_path} has "
                        f"{len(targets)}; line {n + 1} of {long_} has no partner in {short}")
    pairs, skipped = [], []
    for number, (s, t) in enumerate(zip(sources, targets), 1):
        source, target = normalize(s), normalize(t)
        if not source or not target:
            _bad(source_path if not source else target_path, number, "is empty", skip_bad_lines, skipped)
            continue
        pairs.append((source, target))
    _report_skipped(source_path, skipped)
    return pairs


def read_tfds(name, data_dir, split):
    """Pairs of a prepared tfds translation set, in its supervised (source, target) order."""
    builder = open_tfds(name, data_dir, split)
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2:
        raise DataError(f"tfds data set {name!r} has no (source, target) supervised keys: not a translation set")
    kinds = {k: builder.info.features[k].dtype for k in keys}
    if any(kind != tf.string for kind in kinds.values()):
        raise DataError(f"tfds data set {name!r} has supervised keys of " + ", ".join(
            f"{k} ({kind.name})" for k, kind in kinds.items()) + ": not a translation set (two text features)")
    pairs, empty = [], 0
    for source, target in builder.as_dataset(split=split, as_supervised=True).as_numpy_iterator():
        source, target = normalize(source.decode("utf-8")), normalize(target.decode("utf-8"))
        if source and target:
            pairs.append((source, target))
        else:
            empty += 1
    if empty:
        print(f"warning: skipped {empty} pairs of tfds {name} with an empty sentence")
    return pairs


def _report_skipped(path, skipped):
    if skipped:
        print(f"warning: skipped {len(skipped)} bad lines of {path} (first: line {skipped[0]})")


def read_pairs(cfg):
    """The (source, target) pairs the config names, normalised, duplicates dropped, in file order."""
    if cfg.source == "embedded":
        pairs = read_tsv(EMBEDDED_PAIRS)
    elif cfg.source == "tsv":
        if not cfg.path:
            raise DataError("--data.source tsv needs --data.path FILE (lines: source<TAB>target)")
        pairs = read_tsv(cfg.path, cfg.skip_bad_lines)
    elif cfg.source == "parallel":
        if not cfg.path or not cfg.target_path:
            raise DataError("--data.source parallel needs --data.path SOURCE_FILE and --data.target_path TARGET_FILE")
        pairs = read_parallel(cfg.path, cfg.target_path, cfg.skip_bad_lines)
    elif cfg.source == "tfds":
        if not cfg.tfds_name:
            raise DataError("--data.source tfds needs --data.tfds_name, e.g. ted_hrlr_translate/pt_to_en")
        pairs = read_tfds(cfg.tfds_name, cfg.data_dir, cfg.tfds_split)
    else:
        raise DataError(f"unknown translation source {cfg.source!r}")
    if cfg.reverse:
        pairs = [(t, s) for s, t in pairs]
    pairs = list(dict.fromkeys(pairs))
    if cfg.max_pairs:
        pairs = pairs[:cfg.max_pairs]
    if not pairs:
        raise DataError(f"no sentence pairs in {cfg.path or cfg.tfds_name or EMBEDDED_PAIRS}")
    return pairs


def split_pairs(pairs, dev_size, test_size, seed):
    """{"train", "dev", "test"} lists of pairs; whole groups of pairs sharing a source go to one split."""
    groups = {}
    for pair in pairs:
        groups.setdefault(pair[0], []).append(pair)
    if dev_size + test_size > len(pairs) // 2:
        raise DataError(f"{len(pairs)} pairs are too few to hold out {dev_size} dev and {test_size} test pairs; "
                        f"lower --data.dev_size / --data.test_size")
    order = np.random.default_rng(seed).permutation(len(groups))
    sources = list(groups)
    splits = {"test": [], "dev": [], "train": []}
    for index in order:
        group = groups[sources[index]]
        name = "test" if len(splits["test"]) < test_size else "dev" if len(splits["dev"]) < dev_size else "train"
        splits[name].extend(group)
    return splits
