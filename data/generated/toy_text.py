"""Tiny generated text sets whose answer is known: what the apps' smoke examples and tests train on
in seconds (planted word groups for embeddings, word-by-word pairs for translation)."""
import numpy as np

GROUPS = {"animals": (["cat", "dog", "horse", "cow"], ["eats", "runs", "barks", "sleeps", "farm"]),
          "colours": (["red", "blue", "green", "yellow"], ["paint", "bright", "shade", "dark", "wall"]),
          "cities": (["paris", "london", "rome", "berlin"], ["travel", "capital", "visit", "flight", "city"])}
PLANTED = [w for words, _ in GROUPS.values() for w in words]
EN = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "red", "blue"]
ES = ["uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "rojo", "azul"]


def write_planted_corpus(path, sentences=3000, seed=0):
    """Sentences of one planted word among four context words of its group: each planted word's
    nearest planted neighbours are its own group."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(sentences):
        words, contexts = list(GROUPS.values())[rng.integers(3)]
        sentence = list(rng.choice(contexts, 4, replace=False)) + [words[rng.integers(4)]]
        rng.shuffle(sentence)
        lines.append(" ".join(sentence))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_word_pairs(path, n=1500, seed=0):
    """Sentences of 1-5 words and their word-by-word 'translation' (Anki TSV): a task a tiny model learns in seconds."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        words = rng.integers(0, len(EN), rng.integers(1, 6))
        lines.append(" ".join(EN[w] for w in words).capitalize() + ".\t" + " ".join(ES[w] for w in words).capitalize() + ".\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path
