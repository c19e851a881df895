"""Text corpora: standardisation, counting, vocabulary, the id file, and every error a user can meet."""
import gzip

import numpy as np
import pytest
import tensorflow as tf

from data.errors import DataError
from data.text.skipgram import TextDataConfig
from data.text.corpus import (EMBEDDED_CORPUS, check_utf8, corpus_files, count_words, file_lines, make_vocabulary, prepare_corpus,
                              read_vocabulary, standardize, write_ids)


def test_standardize_lowercases_and_splits_on_punctuation():
    tokens = standardize(tf.constant(["Fellow-Citizens of the Senate: ÉTATS, nation's 1790!", "  "]))
    assert [t.decode() for t in tokens[0].numpy()] == ["fellow", "citizens", "of", "the", "senate", "états",
                                                        "nation", "s", "1790"]
    assert tokens[1].numpy().size == 0


def test_standardize_keeps_combining_marks():
    """Devanagari's vowel signs and virama, Hebrew's points are part of their words (not word breaks)."""
    tokens = standardize(tf.constant(["हिन्दी भाषा", "עִבְרִית"])).to_list()
    assert [[t.decode() for t in line] for line in tokens] == [["हिन्दी", "भाषा"], ["עִבְרִית"]]


def test_standardize_composes_combining_accents():
    """"café" typed with a combining accent (e + U+0301) and with the precomposed é is one word (NFC)."""
    tokens = standardize(tf.constant(["cafe\u0301 Cafe\u0301", "café CAFÉ"])).to_list()
    assert [[t.decode() for t in line] for line in tokens] == [["café", "café"], ["café", "café"]]


def test_count_vocabulary_and_ids_round_trip(tmp_path):
    (tmp_path / "a.txt").write_text("the cat sat\nthe dog sat on the mat\n", encoding="utf-8")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("The cat!\n")
    files = corpus_files(tmp_path)
    counts, lines = count_words(file_lines(files))
    assert lines == 3 and counts == {"the": 4, "cat": 2, "sat": 2, "dog": 1, "on": 1, "mat": 1}
    vocabulary, kept = make_vocabulary(counts, min_count=2, max_size=0)
    assert vocabulary == ["the", "cat", "sat"] and kept.tolist() == [4, 2, 2]  # ties alphabetical
    assert make_vocabulary(counts, 1, 2)[0] == ["the", "cat"]
    written = write_ids(file_lines(files), vocabulary, tmp_path / "ids.bin")
    ids = np.fromfile(tmp_path / "ids.bin", "<i4").tolist()
    assert ids == [0, 1, 2, -1, 0, 2, 0, -1, 0, 1, -1]  # unknown words dropped, -1 ends each line
    assert written == 8


def test_prepare_corpus_writes_the_vocabulary(tmp_path):
    (tmp_path / "c.txt").write_text("a b a b a c\n" * 3, encoding="utf-8")
    corpus = prepare_corpus(TextDataConfig(source="files", path=str(tmp_path / "c.txt"), min_count=3, window=2), tmp_path / "run")
    assert corpus.vocabulary == ["a", "b", "c"] and corpus.words == 18 and corpus.kept_words == 18
    words, counts = read_vocabulary(tmp_path / "run" / "vocabulary.tsv")
    assert words == corpus.vocabulary and counts.tolist() == [9, 6, 3]


def test_a_corpus_folder_skips_what_the_system_wrote(tmp_path):
    """Hidden files and folders (.ipynb_checkpoints, macOS's ._ shadows) and Windows' Thumbs.db/desktop.ini are not text."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("the cat\n", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("the dog\n", encoding="utf-8")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text("the cat\n", encoding="utf-8")
    for name in ("._a.txt", ".DS_Store", "Thumbs.db", "desktop.ini"):
        (tmp_path / "sub" / name).write_bytes(b"\0\5\26\7")
    assert corpus_files(tmp_path) == [tmp_path / "a.txt", tmp_path / "sub" / "b.txt"]


def test_embedded_corpus_is_real_english():
    counts, lines = count_words(file_lines([EMBEDDED_CORPUS]))
    assert lines == 62 and sum(counts.values()) > 350_000
    assert max(counts, key=counts.get) == "the"


def test_non_utf8_bytes_name_the_file_and_line(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("first line\nsecond line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: line 3 is not UTF-8 \(bytes e9"):
        check_utf8([bad])
    with pytest.raises(DataError, match="line 3 is not UTF-8"):
        prepare_corpus(TextDataConfig(source="files", path=str(bad)), tmp_path / "run")


def test_gzip_is_told_by_its_bytes_and_other_archives_are_named(tmp_path):
    """corpus.txt.GZ (or a gzip without the suffix) is read as gzip; bzip2/zip/xz are named, not 'not UTF-8'."""
    import bz2
    import gzip

    (tmp_path / "a.txt.GZ").write_bytes(gzip.compress(b"the cat sat\n"))
    counts, lines = count_words(file_lines(corpus_files(tmp_path / "a.txt.GZ")))
    assert lines == 1 and counts == {"the": 1, "cat": 1, "sat": 1}
    check_utf8([tmp_path / "a.txt.GZ"])
    (tmp_path / "b.txt.bz2").write_bytes(bz2.compress(b"the cat sat\n"))
    with pytest.raises(DataError, match=r"b.txt.bz2 is a bzip2 archive: unpack it"):
        check_utf8([tmp_path / "b.txt.bz2"])


def test_old_mac_line_ends_are_refused_with_the_fix(tmp_path):
    """Lines ended by \\r alone would make the corpus one sentence (windows across every line)."""
    (tmp_path / "mac.txt").write_bytes(b"the cat sat\rthe dog ran\r")
    with pytest.raises(DataError, match=r"mac.txt: lines end with a carriage return alone .*tr"):
        check_utf8([tmp_path / "mac.txt"])
    check_utf8([tmp_path / "mac.txt"], lone_cr_lines=True)  # the pairs reader splits them itself


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(DataError, match="text corpus not found"):
        corpus_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        corpus_files(tmp_path / "empty")
    with pytest.raises(DataError, match="needs --data.path"):
        prepare_corpus(TextDataConfig(source="files"), tmp_path / "run")


@pytest.mark.parametrize("text, settings, message", [
    ("", {}, "holds no words"),
    ("... !!! ---\n\n", {}, "holds no words"),
    ("one two three four\n", {"min_count": 2}, "no word of .* occurs --data.min_count 2 times .*'\w+', 1 times"),
    ("one two three\n", {"min_count": 1, "window": 5}, "has 3 words of the vocabulary, fewer than the window"),
])
def test_corpus_errors(tmp_path, text, settings, message):
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        prepare_corpus(TextDataConfig(source="files", path=str(path), **settings), tmp_path / "run")


def test_tfds_without_data_dir_says_it_cannot_download(tmp_path):
    with pytest.raises(DataError, match="needs --data.data_dir"):
        prepare_corpus(TextDataConfig(source="tfds", tfds_name="imdb_reviews"), tmp_path / "run")
    with pytest.raises(DataError, match="not prepared"):
        prepare_corpus(TextDataConfig(source="tfds", tfds_name="imdb_reviews", data_dir=str(tmp_path)), tmp_path / "run")


def test_tfds_text_set_prepared_offline(tmp_path):
    """A tiny tfds text builder prepared from local strings, read by name like imdb_reviews or lm1b."""
    import tensorflow_datasets as tfds

    class TinyText(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["a", "b"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, line in enumerate(["The cat sat.", "The dog sat!", "A cat ran."] * 3):
                yield i, {"text": line, "label": i % 2}

    TinyText(data_dir=str(tmp_path)).download_and_prepare()
    corpus = prepare_corpus(TextDataConfig(source="tfds", tfds_name="tiny_text", data_dir=str(tmp_path), min_count=3,
                                           window=2), tmp_path / "run")
    assert corpus.lines == 9 and corpus.words == 27 and corpus.vocabulary[:3] == ["cat", "sat", "the"]
    with pytest.raises(DataError, match="no text feature 'body'; pass --data.text_key, one of: text"):
        prepare_corpus(TextDataConfig(source="tfds", tfds_name="tiny_text", data_dir=str(tmp_path), text_key="body"),
                       tmp_path / "other")
