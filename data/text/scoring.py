"""Corpus scores of translations with sacreBLEU: BLEU and chrF with their signatures, and BLEU against
every reference a source has.

Anki-style data give one source several translations ("Go." -> "Ve.", "Vete.", "Váyase."), each a
pair of its own. Single-reference BLEU scores every pair, as most reports do: a source's translation
is compared with each of its references in turn, so matching one of them still counts as a miss
against the others. Multi-reference BLEU, BLEU as Papineni et al. (2002) define it, groups the pairs
by normalised source, translates each source once and scores it against all of its references at
once (n-gram matches clipped by the most any one reference allows, brevity from the closest
reference length); it is the fairer figure where a sentence has many right translations.

sacreBLEU takes references as streams, `streams[k][i]` being the k-th reference of sentence i. For
a varying number of references a stream holds None where a sentence has fewer: sacreBLEU drops the
None entries sentence by sentence (an empty string would count as a reference of length 0) and its
signature then says `nrefs:var`.

    hypotheses, scores = score_translations(sources, references, translate)   # translate(list) -> list
    scores.bleu, scores.bleu_multi_reference, scores.unique_sources, scores.references_per_source
"""
import dataclasses
import importlib.util
import re

import sacrebleu

from data.text.normalize import normalize


@dataclasses.dataclass
class TranslationScores:
    bleu: float  # one reference per pair, every pair
    chrf: float  # one reference per pair, every pair
    bleu_multi_reference: float  # every unique source against all of its references
    pairs: int
    unique_sources: int  # by normalised text
    references_per_source: float  # mean
    bleu_signature: str
    chrf_signature: str
    bleu_multi_reference_signature: str

    def rounded(self, digits=2):
        """The fields as a dict, scores rounded to `digits` decimals."""
        return {k: round(v, digits) if isinstance(v, float) else v for k, v in dataclasses.asdict(self).items()}

    def summary(self):
        """One line with both BLEU figures and chrF."""
        return (f"BLEU {self.bleu:.2f} (one reference per pair, {self.pairs:,} pairs); multi-reference BLEU "
                f"{self.bleu_multi_reference:.2f} ({self.unique_sources:,} sources, {self.references_per_source:.2f} "
                f"references each on average); chrF {self.chrf:.2f}")


def group_by_source(sources, references):
    """The unique normalised sources in first-seen order, and the distinct references of each."""
    groups = {}
    for source, reference in zip(sources, references, strict=True):
        groups.setdefault(normalize(source), {})[reference] = None
    return list(groups), [list(refs) for refs in groups.values()]


_KANA = re.compile(r"[\u3040-\u30ff]")
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff]")


def bleu_tokenizer(references):
    """sacreBLEU's tokenizer for the target language, told by its script: BLEU counts words, and 13a (the
    default, for languages written with spaces) makes a Japanese or Chinese sentence one word. Chinese: 'zh'
    (each character); Japanese: 'ja-mecab' when mecab-python3 and ipadic are installed, else 'char'; Thai, Khmer,
    Burmese: 'char'.
    The choice is in the score's signature (tok:...)."""
    text = "".join(references[:2000])
    letters = sum(not c.isspace() for c in text) or 1
    if len(_UNSPACED.findall(text)) < letters / 2:
        return "13a"  # Korean too: written with spaces
    if _KANA.search(text):
        return "ja-mecab" if importlib.util.find_spec("MeCab") and importlib.util.find_spec("ipadic") else "char"
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "char"


def reference_streams(reference_lists):
    """sacreBLEU's reference streams of per-sentence reference lists, padded with None."""
    width = max(map(len, reference_lists))
    return [[refs[k] if k < len(refs) else None for refs in reference_lists] for k in range(width)]


def multi_reference_bleu(hypotheses, reference_lists):
    """(corpus BLEU of hypotheses[i] against all of reference_lists[i], the metric's signature)."""
    metric = sacrebleu.BLEU(tokenize=bleu_tokenizer([r for refs in reference_lists for r in refs]))
    return metric.corpus_score(hypotheses, reference_streams(reference_lists)).score, str(metric.get_signature())


def score(hypotheses, references, unique_hypotheses, reference_lists):
    """TranslationScores of per-pair hypotheses/references and of each unique source's hypothesis
    against its reference list."""
    bleu, chrf = sacrebleu.BLEU(tokenize=bleu_tokenizer(references)), sacrebleu.CHRF()
    bleu_single = bleu.corpus_score(hypotheses, [references]).score
    chrf_single = chrf.corpus_score(hypotheses, [references]).score
    multi, multi_signature = multi_reference_bleu(unique_hypotheses, reference_lists)
    return TranslationScores(
        bleu=bleu_single, chrf=chrf_single, bleu_multi_reference=multi, pairs=len(hypotheses),
        unique_sources=len(reference_lists),
        references_per_source=sum(map(len, reference_lists)) / len(reference_lists),
        bleu_signature=str(bleu.get_signature()), chrf_signature=str(chrf.get_signature()),
        bleu_multi_reference_signature=multi_signature)


def score_translations(sources, references, translate):
    """Translate each unique normalised source once (`translate`: list of str -> list of str) and score;
    returns (the translation of every pair's source, TranslationScores)."""
    unique, reference_lists = group_by_source(sources, references)
    translations = list(translate(unique))
    by_source = dict(zip(unique, translations, strict=True))
    hypotheses = [by_source[normalize(s)] for s in sources]
    return hypotheses, score(hypotheses, references, translations, reference_lists)
