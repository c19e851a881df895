"""Text normalisation: known values, and the graph twin agreeing with Python on tricky inputs."""
import sys
import unicodedata

import numpy as np
import pytest

from data.text.normalize import normalize, normalize_graph

# every character Python's \s folds: ASCII controls (tab, VT, FS..US), NEL, no-break and Unicode spaces
WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
TRICKY = [
    "", " ", "\t", "\t\n \r\n", "  ﬁne\u00a0 day\t\n", "Cafe\u0301", "Ｆｕｌｌ　ｗｉｄｔｈ！", "x²  ①", "a\t\tb",
    "a \u00a0\u2003\u3000 b", "line\u2028break\u2029para", "a\vb\x0cc\x1cd\x85e", "zero\u200bwidth stays",
    "  ¿Dónde   está la estación?  ", "ǅemal ﬀ ℌ",
]


def test_known_values():
    assert normalize("  ﬁne\u00a0 day\t\n") == "fine day"  # ligature and no-break space folded by NFKC
    assert normalize("Cafe\u0301") == "Café"  # combining accent composed
    assert normalize("a\t\tb\n c") == "a b c"
    assert normalize("") == "" and normalize(" \t\u00a0") == ""
    assert normalize("zero\u200bwidth") == "zero\u200bwidth"  # a format character, not whitespace


@pytest.mark.parametrize("case", ["tricky", "every whitespace character"])
def test_graph_twin_agrees_with_python(case):
    if case == "tricky":
        inputs = TRICKY
    else:
        inputs = [f"a{c}b" for c in WHITESPACE] + [f"{c}{c}a{c}" for c in WHITESPACE]
    graph = [s.decode("utf-8") for s in normalize_graph(np.array(inputs, dtype=object)).numpy()]
    assert graph == [normalize(s) for s in inputs]


def test_every_whitespace_character_folds_to_one_space():
    assert len(WHITESPACE) >= 25 and all(normalize(f"a{c}b") == "a b" for c in WHITESPACE)
    assert all(unicodedata.category(c) in ("Zs", "Zl", "Zp", "Cc") for c in WHITESPACE)


def test_normalizing_twice_changes_nothing():
    once = [normalize(s) for s in TRICKY]
    assert [normalize(s) for s in once] == once
