"""Reading, deduplicating and splitting sentence pairs, and every reader's error message (the normalising
itself: test_normalize.py)."""
import gzip

import pytest

from data.errors import DataError
from data.text.pairs import EMBEDDED_PAIRS, TranslationDataConfig, read_pairs, read_parallel, read_tsv, split_pairs


def test_tsv_reads_anki_lines_and_ignores_extra_columns(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Go.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\nHi!\t¡Hola!\n", encoding="utf-8")
    assert read_tsv(path) == [("Go.", "Ve."), ("Hi!", "¡Hola!")]


def test_a_byte_order_mark_and_windows_line_ends_are_not_text(tmp_path):
    """As Notepad and Excel save: the first source is "Go.", not "\ufeffGo." (another sentence for the split)."""
    (tmp_path / "pairs.tsv").write_bytes("\ufeffGo.\tVe.\r\nHi!\t¡Hola!\r\n".encode("utf-8"))
    assert read_tsv(tmp_path / "pairs.tsv") == [("Go.", "Ve."), ("Hi!", "¡Hola!")]
    (tmp_path / "en.txt").write_bytes("\ufeffGo.\r\n".encode("utf-8"))
    (tmp_path / "es.txt").write_bytes("\ufeffVe.\r\n".encode("utf-8"))
    assert read_parallel(tmp_path / "en.txt", tmp_path / "es.txt") == [("Go.", "Ve.")]


def test_a_lone_carriage_return_is_a_space_not_a_line_break(tmp_path):
    """Aligned files count lines by \\n (wc -l): a \\r inside a crawled sentence kept them aligned; old Mac files
    (\\r only) still read line by line."""
    (tmp_path / "en.txt").write_bytes(b"Go\rnow.\r\nHi.\n")
    (tmp_path / "es.txt").write_bytes(b"Ve.\nHola.\n")
    assert read_parallel(tmp_path / "en.txt", tmp_path / "es.txt") == [("Go now.", "Ve."), ("Hi.", "Hola.")]
    (tmp_path / "mac.tsv").write_bytes(b"Go.\tVe.\rHi.\tHola.\r")
    assert read_tsv(tmp_path / "mac.tsv") == [("Go.", "Ve."), ("Hi.", "Hola.")]


def test_tatoeba_exports_are_read_by_their_sentence_columns(tmp_path, capsys):
    export = tmp_path / "Sentence pairs in English-Spanish.tsv"  # tatoeba.org: id, sentence, id, translation
    export.write_text("1276\tLet's try something.\t2481\tIntentemos algo.\n1277\tI have to go.\t2482\tMe tengo que ir.\n",
                      encoding="utf-8")
    assert read_tsv(export) == [("Let's try something.", "Intentemos algo."), ("I have to go.", "Me tengo que ir.")]
    assert "sentences from columns 2 and 4" in capsys.readouterr().out
    challenge = tmp_path / "test.txt"  # Tatoeba-Challenge: language, language, sentence, translation
    challenge.write_text("eng\tspa\tGo.\tVe.\neng\tspa\tHi.\tHola.\n", encoding="utf-8")
    assert read_tsv(challenge) == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert "language (eng), language (spa)" in capsys.readouterr().out
    mixed = tmp_path / "eng-zho.txt"  # one language's labels vary from line to line
    mixed.write_text("eng\tcmn_Hans\tGo.\t走。\neng\tcmn_Hant\tHi.\t嗨。\neng\tyue_Hant\tRun.\t跑。\n", encoding="utf-8")
    assert read_tsv(mixed) == [("Go.", "走。"), ("Hi.", "嗨。"), ("Run.", "跑。")]
    assert "language (cmn_Hans, cmn_Hant, yue_Hant)" in capsys.readouterr().out
    challenge.write_text("eng\tspa\tGo.\tVe.\n" * 10 + "eng\tspa\tHi.\n", encoding="utf-8")  # a line cut short
    with pytest.raises(DataError, match=r"test.txt: line 11 has 3 columns, not the 4 of the lines before"):
        read_tsv(challenge)


def test_csv_quoted_fields_are_unquoted(tmp_path, capsys):
    """pandas' to_csv(sep="\\t") wraps a sentence holding a quote in quotes and doubles it; Excel's and QUOTE_ALL
    wrap every field. Sentences that merely start and end with a quote (Tatoeba has many) are kept as they are."""
    path = tmp_path / "pairs.tsv"
    path.write_text('source\ttarget\n"He said ""hi""."\t"Dijo ""hola""."\nGo.\tVe.\n', encoding="utf-8")
    assert read_tsv(path) == [('He said "hi".', 'Dijo "hola".'), ("Go.", "Ve.")]
    assert "sentences read as CSV-quoted" in capsys.readouterr().out
    path.write_text('"source"\t"target"\n"Go."\t"Ve."\n"Hi."\t"Hola."\n', encoding="utf-8")
    assert read_tsv(path) == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert "names the columns" in capsys.readouterr().out  # unquoted before the header check
    native = '"Go away!"\t"¡Vete!"\nHe said "no".\tDijo "no".\nGo.\tVe.\n'
    path.write_text(native, encoding="utf-8")
    assert read_tsv(path) == [('"Go away!"', '"¡Vete!"'), ('He said "no".', 'Dijo "no".'), ("Go.", "Ve.")]
    assert "CSV-quoted" not in capsys.readouterr().out


def test_a_first_row_of_column_names_is_left_out(tmp_path, capsys):
    """Spreadsheets and pandas write a header row: it is no sentence pair."""
    path = tmp_path / "pairs.tsv"
    path.write_text("English\tSpanish\nGo.\tVe.\nHi.\tHola.\n", encoding="utf-8")
    assert read_tsv(path) == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert "line 1 ('English\\tSpanish') names the columns: left out" in capsys.readouterr().out
    path.write_text("src\ttgt\nGo.\tVe.\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="pairs.tsv: line 3 is empty"):  # numbered as the file's lines still
        read_tsv(path)
    path.write_text("Hello\tHola\n", encoding="utf-8")  # a one-word pair is a pair
    assert read_tsv(path) == [("Hello", "Hola")]


def test_embedded_pairs_read_and_deduplicated():
    pairs = read_pairs(TranslationDataConfig())
    assert len(pairs) == 30000 == len(set(pairs))
    assert EMBEDDED_PAIRS.stat().st_size < 1_000_000
    assert ("Go.", "Váyase.") in pairs


def test_duplicates_dropped_and_reverse_swaps(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hi.\tHola.\nHi.\tHola.\nHi.\t¡Hola!\n", encoding="utf-8")
    assert read_pairs(TranslationDataConfig(source="tsv", path=str(path))) == [("Hi.", "Hola."), ("Hi.", "¡Hola!")]
    assert read_pairs(TranslationDataConfig(source="tsv", path=str(path), reverse=True))[0] == ("Hola.", "Hi.")


def test_split_is_seeded_and_keeps_test_sources_out_of_training():
    pairs = read_pairs(TranslationDataConfig())
    splits = split_pairs(pairs, dev_size=500, test_size=1000, seed=3)
    assert sum(map(len, splits.values())) == len(pairs)
    assert 1000 <= len(splits["test"]) < 1010 and 500 <= len(splits["dev"]) < 510
    train_sources = {s for s, _ in splits["train"]}
    assert not train_sources & {s for s, _ in splits["test"]}
    assert not train_sources & {s for s, _ in splits["dev"]}
    assert split_pairs(pairs, 500, 1000, seed=3) == splits
    assert split_pairs(pairs, 500, 1000, seed=4)["test"] != splits["test"]


def test_empty_line_is_named(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Go.\tVe.\n\nHi.\tHola.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.tsv: line 2 is empty; .*--data.skip_bad_lines"):
        read_tsv(path)
    assert read_tsv(path, skip_bad_lines=True) == [("Go.", "Ve."), ("Hi.", "Hola.")]


def test_line_without_tab_is_named(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Go.\tVe.\nHi. Hola.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2 has no tab \(expected: source<TAB>target\)"):
        read_tsv(path)


def test_empty_target_is_named(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Go.\t  \n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1 has an empty target sentence"):
        read_tsv(path)


def test_non_utf8_bytes_are_named(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes("Go.\tVe.\n".encode() + "Eat.\tCome el pan de mañana.\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"pairs.tsv: line 2 is not UTF-8 \(bytes f1"):
        read_tsv(path)


def test_parallel_files_pair_line_by_line_and_gz_is_read(tmp_path):
    (tmp_path / "en.txt").write_text("Go.\nHi.\n", encoding="utf-8")
    with gzip.open(tmp_path / "es.txt.gz", "wt", encoding="utf-8") as f:
        f.write("Ve.\nHola.\n")
    assert read_parallel(tmp_path / "en.txt", tmp_path / "es.txt.gz") == [("Go.", "Ve."), ("Hi.", "Hola.")]


def test_parallel_files_of_different_lengths_name_the_first_unpaired_line(tmp_path):
    (tmp_path / "en.txt").write_text("Go.\nHi.\nRun.\n", encoding="utf-8")
    (tmp_path / "es.txt").write_text("Ve.\nHola.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"en.txt has 3 lines, .*es.txt has 2; line 3 of .*en.txt has no partner"):
        read_parallel(tmp_path / "en.txt", tmp_path / "es.txt")


def test_parallel_empty_line_names_file_and_line(tmp_path):
    (tmp_path / "en.txt").write_text("Go.\nHi.\n", encoding="utf-8")
    (tmp_path / "es.txt").write_text("Ve.\n \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"es.txt: line 2 is empty"):
        read_parallel(tmp_path / "en.txt", tmp_path / "es.txt")


def test_missing_files_and_flags_are_named(tmp_path):
    with pytest.raises(DataError, match="translation file not found: .*nope.tsv"):
        read_pairs(TranslationDataConfig(source="tsv", path=str(tmp_path / "nope.tsv")))
    with pytest.raises(DataError, match="needs --data.path SOURCE_FILE and --data.target_path"):
        read_pairs(TranslationDataConfig(source="parallel", path="a.txt"))
    with pytest.raises(DataError, match="needs --data.data_dir: this machine cannot download it"):
        read_pairs(TranslationDataConfig(source="tfds", tfds_name="ted_hrlr_translate/pt_to_en"))


def test_too_few_pairs_for_the_held_out_splits():
    with pytest.raises(DataError, match="10 pairs are too few to hold out 5 dev and 5 test pairs"):
        split_pairs([(str(i), str(i)) for i in range(10)], dev_size=5, test_size=5, seed=0)


def test_tfds_translation_set_prepared_offline(tmp_path, capsys):
    """A tiny tfds builder with (source, target) supervised keys, read by name like ted_hrlr_translate."""
    import tensorflow_datasets as tfds

    class TinyTranslate(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.Translation(languages=["en", "es"]),
                                         supervised_keys=("en", "es"))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, (en, es) in enumerate([("Go.", "Ve."), ("Hi.", "Hola."), ("Hi.", "Hola."), ("Run.", "")]):
                yield i, {"en": en, "es": es}

    class TinyReviews(tfds.core.GeneratorBasedBuilder):  # (text, label): no translation set
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["neg", "pos"])}),
                supervised_keys=("text", "label"))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            yield 0, {"text": "Good.", "label": 1}

    TinyTranslate(data_dir=str(tmp_path)).download_and_prepare()
    pairs = read_pairs(TranslationDataConfig(source="tfds", tfds_name="tiny_translate", data_dir=str(tmp_path)))
    assert sorted(pairs) == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert "skipped 1 pairs of tfds tiny_translate with an empty sentence" in capsys.readouterr().out
    TinyReviews(data_dir=str(tmp_path)).download_and_prepare()
    with pytest.raises(DataError, match=r"'tiny_reviews' has supervised keys of text \(string\), label \(int64\): not a "):
        read_pairs(TranslationDataConfig(source="tfds", tfds_name="tiny_reviews", data_dir=str(tmp_path)))
