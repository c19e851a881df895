"""Corpus scores: multi-reference BLEU on a hand example, grouping of repeated sources, and agreement with
calling sacreBLEU directly."""
import pytest
import sacrebleu

from data.text.scoring import group_by_source, multi_reference_bleu, reference_streams, score_translations

# Anki style: a source repeated with each of its translations
SOURCES = ["I am very hungry now.", "I am very hungry now.", "Where is the old train station?",
           "The cat sleeps on the sofa."]
REFERENCES = ["Ahora tengo mucha hambre.", "Ahora mismo tengo muchísima hambre.",
              "¿Dónde está la vieja estación de tren?", "El gato duerme en el sofá."]
TRANSLATIONS = {"I am very hungry now.": "Ahora mismo tengo muchísima hambre.",  # the SECOND reference, exactly
                "Where is the old train station?": "¿Dónde está la vieja estación de tren?",
                "The cat sleeps on the sofa.": "El gato duerme en el sofá."}


def translate_counting(calls):
    def translate(sentences):
        calls.append(list(sentences))
        return [TRANSLATIONS[s] for s in sentences]
    return translate


def test_a_match_with_the_second_reference_is_perfect_only_with_every_reference():
    calls = []
    hypotheses, scores = score_translations(SOURCES, REFERENCES, translate_counting(calls))
    assert scores.bleu_multi_reference == pytest.approx(100.0)
    assert scores.bleu < 90.0  # single reference: pair 1 compares the translation with the other reference
    assert hypotheses == [TRANSLATIONS[s] for s in SOURCES]
    assert (scores.pairs, scores.unique_sources, scores.references_per_source) == (4, 3, pytest.approx(4 / 3))
    assert calls == [list(TRANSLATIONS)]  # one call, each unique source once, in first-seen order
    assert "nrefs:var" in scores.bleu_multi_reference_signature and "nrefs:1" in scores.bleu_signature
    assert scores.summary().startswith(f"BLEU {scores.bleu:.2f} (one reference per pair, 4 pairs); "
                                       f"multi-reference BLEU 100.00")


def test_grouping_by_normalised_source_keeps_order_and_distinct_references():
    sources = ["Go.", "Hi.", " Go. ", "Go.", "Hi.", "Run!"]
    references = ["Ve.", "Hola.", "Vete.", "Ve.", "¡Hola!", "¡Corre!"]
    unique, refs = group_by_source(sources, references)
    assert unique == ["Go.", "Hi.", "Run!"]
    assert refs == [["Ve.", "Vete."], ["Hola.", "¡Hola!"], ["¡Corre!"]]  # the repeated ("Go.", "Ve.") once
    assert reference_streams(refs) == [["Ve.", "Hola.", "¡Corre!"], ["Vete.", "¡Hola!", None]]
    calls = []
    hypotheses, scores = score_translations(sources, references, lambda s: calls.append(s) or [x.upper() for x in s])
    assert calls == [unique] and hypotheses == ["GO.", "HI.", "GO.", "GO.", "HI.", "RUN!"]
    assert scores.references_per_source == pytest.approx(5 / 3)


def test_agrees_with_sacrebleu_called_directly():
    _, scores = score_translations(SOURCES, REFERENCES, translate_counting([]))
    hypotheses = [TRANSLATIONS[s] for s in SOURCES]
    assert scores.bleu == sacrebleu.corpus_bleu(hypotheses, [REFERENCES]).score
    assert scores.chrf == sacrebleu.corpus_chrf(hypotheses, [REFERENCES]).score
    unique = list(TRANSLATIONS.values())
    streams = [[REFERENCES[0], REFERENCES[2], REFERENCES[3]], [REFERENCES[1], None, None]]  # None: no further reference
    assert scores.bleu_multi_reference == sacrebleu.corpus_bleu(unique, streams).score


def test_variable_references_are_padded_with_none_not_empty_strings():
    """An empty string would be a reference of length 0: the brevity penalty's closest length for short output."""
    hypotheses = ["the cat sat on the mat today", "a dog"]
    refs = [["the cat sat on the mat today", "a cat sat on a mat"], ["a big dog barked loudly"]]
    score, _ = multi_reference_bleu(hypotheses, refs)
    assert score == sacrebleu.corpus_bleu(hypotheses, [[r[0] for r in refs], [refs[0][1], None]]).score
    assert score != sacrebleu.corpus_bleu(hypotheses, [[r[0] for r in refs], [refs[0][1], ""]]).score


def test_one_reference_each_gives_the_single_reference_score():
    sources, references = SOURCES[1:], REFERENCES[1:]
    _, scores = score_translations(sources, references, translate_counting([]))
    assert scores.bleu_multi_reference == scores.bleu and scores.references_per_source == 1.0
    assert "nrefs:1" in scores.bleu_multi_reference_signature


@pytest.mark.parametrize("references, tokenizer", [
    (["私は学生です。", "猫がソファで寝ている。"], "char"),  # Japanese (MeCab is not a dependency)
    (["我是学生。", "猫在沙发上睡觉。"], "zh"),
    (["แมวนอนบนโซฟา"], "char"),
    (["ຂ້ອຍຮັກເຈົ້າ", "ແມວນອນຢູ່ເທິງໂຊຟາ"], "char"),  # Lao
    (["ང་སློབ་ཕྲུག་ཡིན།"], "char"),  # Tibetan
    (["나는 학생입니다.", "고양이가 소파에서 잔다."], "13a"),  # Korean is written with spaces
    (REFERENCES, "13a"),
])
def test_bleu_counts_words_of_languages_written_without_spaces(references, tokenizer):
    from data.text.scoring import bleu_tokenizer

    assert bleu_tokenizer(references) == tokenizer
    _, scores = score_translations(references, references, lambda sentences: [s[:-2] + s[-1] for s in sentences])
    assert f"tok:{tokenizer}" in scores.bleu_signature and f"tok:{tokenizer}" in scores.bleu_multi_reference_signature
    assert 0 < scores.bleu < 100  # one character off: with 13a a Japanese sentence is one word, and BLEU 0
