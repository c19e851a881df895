"""Word-vector evaluation: analogies (3CosAdd, 3CosMul), WordSim-353 Spearman, nearest neighbours.

Analogies follow gensim's `evaluate_word_analogies`: question words lower-cased, a question counts
only if its four words are among the `restrict` most frequent, and the answer is the best word
other than the three given. 3CosMul is Levy & Goldberg's (2014), with cosines shifted to [0, 1].
"""
import unicodedata
from pathlib import Path

import numpy as np

from apps.core.errors import UserError
from apps.word_embeddings.model import normalized


def _lines(path, what):
    """The file's lines, composed (NFC) as the corpus was, so a decomposed "café" in a test file is the word."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    try:
        return unicodedata.normalize("NFC", path.read_text(encoding="utf-8-sig")).splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{what} file {path} is not UTF-8 ({e.reason} at byte {e.start})") from None


def read_analogies(path):
    """{section: [(a, b, c, d), ...]} from a questions-words.txt file (": section" headers)."""
    sections, current = {}, None
    for number, line in enumerate(_lines(path, "analogy questions"), 1):
        if line.startswith(":"):
            current = line[1:].strip()
            sections.setdefault(current, [])  # a section named again (files put together) goes on
        elif line.strip():
            words = line.lower().split()
            if len(words) != 4:
                raise UserError(f"{path}:{number}: expected ': section' or four words, got {line!r}")
            if current is None:
                raise UserError(f"{path}:{number}: a question before any ': section' line; start the file with one, "
                                "e.g. ': capital-common-countries'")
            sections[current].append(tuple(words))
    return sections


def _fields(line):
    """A similarity file's fields: tab-, comma- or space-separated, as WordSim-353, SimLex-999 and MEN come."""
    return line.split("\t") if "\t" in line else line.split(",") if "," in line else line.split()


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def read_wordsim(path):
    """[(word1, word2, score)] from a word-similarity file: WordSim-353 (combined.tab / .csv, with or without
    its header row), SimLex-999 (the `SimLex999` column of its header), MEN (space-separated), '#' comments.
    The score is the first number after the two words unless a header names the column."""
    pairs, column = [], None
    for number, line in enumerate(_lines(path, "word-similarity"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in _fields(line)]
        if not pairs and column is None and len(fields) >= 3 and all(_number(f) is None for f in fields[2:]):
            names = [f.lower() for f in fields]  # a header row: "Word 1<TAB>Word 2<TAB>Human (mean)", SimLex's
            column = next((i for i, n in enumerate(names) if "simlex" in n), -1)
            continue
        if column is not None and column >= 0:  # the header's SimLex999 column
            score = _number(fields[column]) if len(fields) > column else None
        else:
            score = next((v for v in map(_number, fields[2:]) if v is not None), None)
        if len(fields) < 3 or score is None:
            raise UserError(f"{path}:{number}: expected 'word1<TAB>word2<TAB>score' (or commas, or spaces), "
                            f"got {line!r}")
        pairs.append((fields[0].lower(), fields[1].lower(), score))
    if not pairs:
        raise UserError(f"{path}: no word pairs with a score (expected lines of 'word1<TAB>word2<TAB>score')")
    return pairs


def analogy_accuracy(vectors, vocabulary, sections, restrict=30000, batch=1024):
    """Accuracy of 3CosAdd and 3CosMul over the questions whose words are all in the top `restrict`."""
    unit = normalized(vectors[:restrict])
    index = {w: i for i, w in enumerate(vocabulary[:restrict])}
    total = sum(len(q) for q in sections.values())
    report = {"questions": total, "sections": {}}
    right = {"3cosadd": 0, "3cosmul": 0}
    seen = 0
    for name, questions in sections.items():
        ids = np.array([[index[w] for w in q] for q in questions if all(w in index for w in q)], np.int64).reshape(-1, 4)
        hits = _solve(unit, ids, batch)
        for method in right:
            right[method] += int(hits[method].sum())
        seen += len(ids)
        report["sections"][name] = {"questions": len(questions), "seen": len(ids),
                                    "3cosadd": float(hits["3cosadd"].mean()) if len(ids) else None}
    report["seen"] = seen
    report["coverage"] = seen / max(total, 1)
    for method in right:
        report[method] = right[method] / seen if seen else 0.0
    return report


def _solve(unit, ids, batch):
    hits = {"3cosadd": np.zeros(len(ids), bool), "3cosmul": np.zeros(len(ids), bool)}
    for start in range(0, len(ids), batch):
        q = ids[start:start + batch]
        sim_a, sim_b, sim_c = (unit[q[:, i]] @ unit.T for i in range(3))
        add = sim_b - sim_a + sim_c
        mul = ((sim_b + 1) / 2) * ((sim_c + 1) / 2) / ((sim_a + 1) / 2 + 1e-3)
        rows = np.arange(len(q))[:, None]
        for name, score in (("3cosadd", add), ("3cosmul", mul)):
            score[rows, q[:, :3]] = -np.inf
            hits[name][start:start + len(q)] = score.argmax(axis=1) == q[:, 3]
    return hits


def rank(values):
    """Ranks 1..n with ties given their average rank (as Spearman's rho needs)."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y):
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    rx, ry = rank(x), rank(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def wordsim_spearman(vectors, vocabulary, pairs):
    """Spearman's rho between cosine similarity and human scores over the pairs with both words known."""
    index = {w: i for i, w in enumerate(vocabulary)}
    known = [(index[a], index[b], s) for a, b, s in pairs if a in index and b in index]
    if len(known) < 3:
        return {"pairs": len(pairs), "seen": len(known), "coverage": len(known) / max(len(pairs), 1), "spearman": None}
    unit = normalized(vectors)
    cos = [float(unit[a] @ unit[b]) for a, b, _ in known]
    return {"pairs": len(pairs), "seen": len(known), "coverage": len(known) / len(pairs),
            "spearman": spearman(cos, [s for _, _, s in known])}


def nearest(unit, vocabulary, query, k=10):
    """The k words closest (cosine) to the vector `query`, as [(word, similarity)]; `unit` holds the
    vectors already normalised (normalise once, not per query)."""
    q = query / max(np.linalg.norm(query), 1e-12)
    sims = unit @ q
    top = np.argsort(-sims)[:k]
    return [(vocabulary[i], float(sims[i])) for i in top]
