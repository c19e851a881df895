"""Text corpora: files, folders or a tfds set, streamed line by line, standardised and counted with
graph ops, then written once as a file of int32 word ids that every epoch streams again.

A line is a sentence (context windows never cross lines). Standardisation composes accents (NFC),
lower-cases (Unicode) and turns every run of characters that are not letters or digits into a space, so "Fellow-Citizens"
gives "fellow citizens" and "nation's" gives "nation s". The id file drops out-of-vocabulary
words (as word2vec does, before windows are drawn) and ends every sentence with -1.
"""
import codecs
import dataclasses
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from data.embedded import embedded_file
from data.errors import DataError
from data.tfds_sets import open_tfds
from data.user_files import user_files

SENTENCE_END = -1
_LINES_PER_BATCH = 256


def corpus_files(path):
    """The text files of a file or folder (recursively; hidden files and folders, Thumbs.db and the like are
    skipped: data.user_files), sorted."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"text corpus not found: {p}")
    files = [p] if p.is_file() else user_files(p)
    if not files:
        raise DataError(f"text corpus folder {p} holds no files")
    return files


_ARCHIVES = {b"BZh": "bzip2", b"PK\x03\x04": "zip", b"\xfd7zXZ": "xz", b"7z\xbc\xaf": "7z"}


def is_gzip(path):
    """Whether a file is gzipped, told by its first bytes (corpus.txt.GZ, or a .txt that is gzip inside)."""
    with open(path, "rb") as f:
        head = f.read(6)
    kind = next((name for magic, name in _ARCHIVES.items() if head.startswith(magic)), None)
    if kind:
        raise DataError(f"{path} is a {kind} archive: unpack it (gzipped files are read as they are)")
    return head[:2] == b"\x1f\x8b"


def open_binary(path):
    """A plain or gzipped file, opened for reading bytes."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def check_utf8(files, block=1 << 20, lone_cr_lines=False):
    """Raise DataError naming the file and line of the first bytes that are not UTF-8 (C-speed decode); also
    for a file whose lines end with \r alone unless the reader splits those (`lone_cr_lines`)."""
    for path in files:
        decoder = codecs.getincrementaldecoder("utf-8")()
        line = 1
        try:
            with open_binary(path) as f:
                while chunk := f.read(block):
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as e:
                        bad, where = chunk[e.start:e.start + 4], line + chunk[:e.start].count(b"\n")
                        raise DataError(f"{path}: line {where} is not UTF-8 "
                                        f"(bytes {bad.hex(' ')}); convert the file, e.g. with iconv -t UTF-8") from None
                    if line == 1 and not lone_cr_lines and b"\r" in chunk and b"\n" not in chunk:
                        raise DataError(f"{path}: lines end with a carriage return alone (old Mac text); convert "
                                        f"the file, e.g. with tr '\\r' '\\n'")
                    line += chunk.count(b"\n")
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataError(f"{path}: ends inside a UTF-8 character (truncated file?)") from None
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read {path}: {e}") from None


def file_lines(files):
    """A dataset of the lines of `files` (plain or .gz), streamed."""
    names = [str(f) for f in files]
    kinds = ["GZIP" if is_gzip(f) else "" for f in files]
    return tf.data.Dataset.from_tensor_slices((names, kinds)).flat_map(lambda f, k: tf.data.TextLineDataset(f, k))


def tfds_lines(name, data_dir, split, text_key):
    """A dataset of the `text_key` strings of a prepared tfds text set (nothing is downloaded)."""
    builder = open_tfds(name, data_dir, split)
    features = builder.info.features
    if text_key not in features or features[text_key].dtype != tf.string:
        texts = [k for k in features if features[k].dtype == tf.string]
        raise DataError(f"tfds data set {name!r} has no text feature {text_key!r}; pass --data.text_key, one of: "
                        f"{', '.join(texts) or '(none)'}")
    return builder.as_dataset(split=split).map(lambda example: example[text_key])


def standardize(lines):
    """Lines (string tensor [n]) -> tokens (RaggedTensor [n, None]): lower-case, letters (with their combining
    marks: Devanagari's vowel signs, Hebrew's points are part of the word) and digits only. NFC first, so that
    "café" typed with a combining accent (e + U+0301) is the word of the precomposed é."""
    import tensorflow_text as text  # registers its ops (ICU NFC; core TensorFlow has no normalisation op)

    lines = tf.strings.lower(text.normalize_utf8(lines, "NFC"), encoding="utf-8")
    lines = tf.strings.regex_replace(lines, r"[^\p{L}\p{M}\p{N}]+", " ")
    return tf.strings.split(tf.strings.strip(lines))


def _token_batches(lines):
    return lines.batch(_LINES_PER_BATCH).map(standardize, num_parallel_calls=2, deterministic=True)


def count_words(lines):
    """{word: count} of a dataset of lines, counted in a graph hash table; also the number of lines."""
    table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)
    n_lines = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def count(batches):
        for tokens in batches:
            words, _, counts = tf.unique_with_counts(tokens.flat_values, out_idx=tf.int64)
            table.insert(words, table.lookup(words) + counts)
            n_lines.assign_add(tokens.nrows())

    try:
        count(_token_batches(lines))
    except tf.errors.OpError as e:
        raise DataError(f"cannot read the corpus: {e.message.splitlines()[0]}") from None
    words, counts = table.export()
    return dict(zip((w.decode() for w in words.numpy()), counts.numpy().tolist())), int(n_lines.numpy())


def make_vocabulary(counts, min_count, max_size):
    """Words with at least `min_count` occurrences, most frequent first (ties alphabetical), at most `max_size`."""
    kept = sorted(((c, w) for w, c in counts.items() if c >= min_count), key=lambda cw: (-cw[0], cw[1]))
    if max_size:
        kept = kept[:max_size]
    return [w for _, w in kept], np.array([c for c, _ in kept], np.int64)


def write_ids(lines, vocabulary, path):
    """Write the corpus as int32 ids (out-of-vocabulary words dropped, -1 after every sentence); returns
    the number of words written."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int32)),
        default_value=-2)

    def to_ids(tokens):
        ids = tf.ragged.map_flat_values(table.lookup, tokens)
        ids = tf.ragged.boolean_mask(ids, ids >= 0)
        ends = tf.fill([ids.nrows(), 1], SENTENCE_END)
        return tf.concat([ids, ends], axis=1).flat_values

    words = 0
    tmp = Path(path).with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for ids in _token_batches(lines).map(to_ids).as_numpy_iterator():
            f.write(ids.astype("<i4").tobytes())
            words += int((ids >= 0).sum())
    tmp.replace(path)
    return words


EMBEDDED_CORPUS = embedded_file("sotu_1961_2021.txt.gz")
EMBEDDED_WORD_EVAL = embedded_file("word_eval")  # questions-words.txt, wordsim353.tsv


@dataclasses.dataclass
class Corpus:
    """A counted corpus: the vocabulary (most frequent first), its counts and the id file."""

    vocabulary: list
    counts: np.ndarray
    ids_path: Path
    lines: int
    words: int  # every token of the corpus
    kept_words: int  # tokens of vocabulary words


def corpus_lines(cfg):
    """The lines of the corpus a TextDataConfig names, and a name for messages."""
    if cfg.source == "sotu":
        return file_lines([EMBEDDED_CORPUS]), "the embedded SOTU corpus"
    if cfg.source == "files":
        if not cfg.path:
            raise DataError("--data.source files needs --data.path FILE_OR_FOLDER")
        files = corpus_files(cfg.path)
        check_utf8(files)
        return file_lines(files), str(cfg.path)
    if cfg.source == "tfds":
        if not cfg.tfds_name:
            raise DataError("--data.source tfds needs --data.tfds_name NAME (and --data.data_dir DIR)")
        return tfds_lines(cfg.tfds_name, cfg.data_dir, cfg.tfds_split, cfg.text_key), f"tfds {cfg.tfds_name}"
    raise DataError(f"unknown text source {cfg.source!r}")


# The data flags that decide a prepared corpus's ids and vocabulary (sample, window... only shape the epochs).
_RECIPE = ("source", "path", "tfds_name", "data_dir", "tfds_split", "text_key", "min_count", "max_vocab")
MANIFEST = "manifest.json"


def _recipe(cfg):
    return {k: getattr(cfg, k) for k in _RECIPE}


def prepare_corpus(cfg, directory):
    """The corpus prepared in `directory` (ids.bin, vocabulary.tsv, manifest.json), made now if absent.

    A prepared corpus is the run's own: a resumed run reads it back (the source is not read again, so
    it may have moved or changed), and data flags that would make another one are refused before a
    byte is written. A folder from before manifests were written is kept only if the corpus gives the
    vocabulary it holds. A new corpus is written to a temporary folder and moved into place whole."""
    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        return _load_prepared(cfg, directory)
    lines, name = corpus_lines(cfg)
    counts, n_lines = count_words(lines)
    words = sum(counts.values())
    if not words:
        raise DataError(f"{name} holds no words ({n_lines} lines, none with a letter or digit)")
    vocabulary, kept = make_vocabulary(counts, cfg.min_count, cfg.max_vocab)
    if not vocabulary:
        top = max(counts, key=counts.get)
        raise DataError(f"no word of {name} occurs --data.min_count {cfg.min_count} times ({len(counts)} distinct "
                        f"words, the most frequent, {top!r}, {counts[top]} times); lower --data.min_count")
    if kept.sum() <= cfg.window:
        raise DataError(f"{name} has {int(kept.sum())} words of the vocabulary, fewer than the window "
                        f"(--data.window {cfg.window}) needs; use a longer corpus or a smaller window")
    if (directory / "vocabulary.tsv").is_file() and read_vocabulary(directory / "vocabulary.tsv")[0] != vocabulary:
        raise DataError(f"{directory / 'vocabulary.tsv'} holds another vocabulary than {name} gives with these data "
                        f"flags; the run's vocabulary must not change: use a new --run_dir, or the run's data flags")
    facts = {"recipe": _recipe(cfg), "lines": n_lines, "words": words, "kept_words": int(kept.sum()),
             "vocabulary": len(vocabulary)}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{directory.name}-", dir=directory.parent))
    try:
        write_ids(lines, vocabulary, tmp / "ids.bin")
        write_vocabulary(tmp / "vocabulary.tsv", vocabulary, kept)
        (tmp / MANIFEST).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
        if directory.exists():  # a folder from before manifests, with the same vocabulary
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Corpus(vocabulary, kept, directory / "ids.bin", n_lines, words, int(kept.sum()))


def _load_prepared(cfg, directory):
    """The corpus prepared in `directory`, if `cfg` asks for the one it holds (else a DataError)."""
    try:
        facts = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        before, now = facts["recipe"], _recipe(cfg)
        vocabulary, counts = read_vocabulary(directory / "vocabulary.tsv")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"the run's corpus in {directory} is damaged ({e}); train again in a new --run_dir") from None
    if before != now:
        changed = ", ".join(f"{k} {before.get(k)!r} -> {now[k]!r}" for k in now if before.get(k) != now[k])
        raise DataError(f"the run's corpus ({directory}) was prepared with other data flags ({changed}); its ids and "
                        "vocabulary must not change: drop those flags, or train in a new --run_dir")
    if not (directory / "ids.bin").is_file() or len(vocabulary) != facts["vocabulary"]:
        raise DataError(f"the run's corpus in {directory} is incomplete; train again in a new --run_dir")
    return Corpus(vocabulary, counts, directory / "ids.bin", facts["lines"], facts["words"], facts["kept_words"])


def write_vocabulary(path, vocabulary, counts):
    Path(path).write_text("".join(f"{w}\t{c}\n" for w, c in zip(vocabulary, counts)), encoding="utf-8")


def read_vocabulary(path):
    """(words, counts) of a vocabulary.tsv."""
    rows = [line.split("\t") for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return [w for w, _ in rows], np.array([int(c) for _, c in rows], np.int64)
