"""Text normalisation of sentence pairs, in Python (readers, scoring) and in graph ops (exported models).

NFKC (ligatures, full-width forms, no-break spaces and the like become their plain forms; combining
accents compose), then every run of whitespace becomes one space, and the ends are stripped. Case and
punctuation are kept, since BLEU is scored on the text people read. The two functions agree on every
input: whitespace is what Python's str.isspace() calls whitespace, on both sides.

    normalize("  ﬁne\\u00a0 day\\t")                       -> "fine day"
    normalize_graph(tf.constant(["  ﬁne\\u00a0 day\\t"]))  -> [b"fine day"]   (needs tensorflow-text)
"""
import re
import unicodedata

import tensorflow as tf

_SPACES = re.compile(r"\s+")
# RE2's \s is ASCII [\t\n\f\r ] only; \p{Z} adds the Unicode space and separator characters, and the
# rest are the control characters Python's \s (str.isspace) also counts: VT, FS..US, NEL
_GRAPH_SPACES = r"[\s\p{Z}\x0b\x1c-\x1f\x85]+"


def normalize(text):
    """NFKC, whitespace runs -> one space, stripped."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def normalize_graph(sentences):
    """`normalize` in graph ops on a string tensor (tensorflow-text's ICU NFKC)."""
    import tensorflow_text as text  # registers its ops; imported only where a graph needs them

    sentences = text.normalize_utf8(sentences, "NFKC")
    # after the fold, spaces are the only whitespace left for strip (which knows ASCII only)
    return tf.strings.strip(tf.strings.regex_replace(sentences, _GRAPH_SPACES, " "))
