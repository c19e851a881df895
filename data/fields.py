"""`field(default, help, choices, min=, max=, ...)` for the data configs, and what those range keys mean.

data/ never imports apps/; apps/core/config.py builds its own `field` from `metadata` here and checks
values with `range_problem`, so both kinds of config carry the same keys:

    image_size: int = field(128, "canvas side", min=32)                       # >= 32
    dropout: float = field(0.1, "dropout", min=0.0, max=1.0, max_exclusive=True)   # [0, 1)
    trust: float = field(1.0, "step bound", min=0.0, min_exclusive=True, finite=False)   # > 0, inf allowed

A float field rejects nan always, and inf unless it says `finite=False`.
"""
import dataclasses
import math

RANGE_KEYS = ("min", "max", "min_exclusive", "max_exclusive", "finite")


def metadata(help="", choices=None, *, min=None, max=None, min_exclusive=False, max_exclusive=False, finite=True):
    """The metadata dict every config field carries (the CLI reads it for --help and for checking)."""
    return {"help": help, "choices": choices, "min": min, "max": max, "min_exclusive": min_exclusive,
            "max_exclusive": max_exclusive, "finite": finite}


def field(default, help, choices=None, **limits):
    """A dataclass field with a help text, optional allowed values and an optional range (see `metadata`)."""
    return dataclasses.field(default=default, metadata=metadata(help, choices, **limits))


def has_range(meta):
    """Whether a numeric field declares what it accepts (a bound, or a list of choices)."""
    return meta.get("min") is not None or meta.get("max") is not None or bool(meta.get("choices"))


def range_text(meta):
    """The range as a reader would write it, e.g. '>= 1', '> 0 and < 1'."""
    parts = []
    if meta.get("min") is not None:
        parts.append(f"{'>' if meta.get('min_exclusive') else '>='} {meta['min']}")
    if meta.get("max") is not None:
        parts.append(f"{'<' if meta.get('max_exclusive') else '<='} {meta['max']}")
    return " and ".join(parts)


def range_problem(value, meta):
    """None if the number `value` is within the field's range, else what it must be ('must be >= 1')."""
    if isinstance(value, float) and math.isnan(value):
        return "must not be nan"
    if isinstance(value, float) and math.isinf(value) and meta.get("finite", True):
        return "must be finite"
    low, high = meta.get("min"), meta.get("max")
    too_low = low is not None and (value <= low if meta.get("min_exclusive") else value < low)
    too_high = high is not None and (value >= high if meta.get("max_exclusive") else value > high)
    return f"must be {range_text(meta)}" if too_low or too_high else None
