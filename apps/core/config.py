"""Typed dataclass configs <-> CLI flags and JSON/TOML files.

Nested dataclasses become dotted flags (`--data.source folder`). Unknown keys, badly typed values and
numbers outside a field's declared range (`field(64, "global batch size", min=1)`; see data/fields.py
for the range keys) raise a one-line `UserError` naming the key and where the value came from (the
command line or the file). A config class (or a nested one) may define `check(self, prefix)`, raising
ValueError for facts no single option states (min_level <= max_level); it runs once the flags and
files are applied. The resolved config is saved with every run.
"""
import argparse
import dataclasses
import json
import sys
import tomllib
import types
import typing
from pathlib import Path

from apps.core.errors import UserError
from data.fields import has_range, metadata, range_problem, range_text

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def field(default, help="", choices=None, **limits):
    """A dataclass field with a help text, optional allowed values and, for a number, its range
    (min=, max=, min_exclusive=, max_exclusive=, finite=: the keys of data.fields.metadata)."""
    meta = metadata(help, choices, **limits)
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value):
    return dataclasses.replace(value) if dataclasses.is_dataclass(value) else type(value)(value)


def _hints(cls):
    return typing.get_type_hints(cls)


def _unwrap_optional(tp):
    """Optional[X] -> (X, True); X -> (X, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def flat_fields(cls, prefix=""):
    """Yield (dotted_name, type, dataclasses.Field) for every leaf field of a config class."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from flat_fields(tp, prefix + f.name + ".")
        else:
            yield prefix + f.name, tp, f


def coerce(key, tp, value, choices=None, meta=None):
    """Convert `value` (from a file or the command line) to type `tp`, or raise UserError; a number
    must also lie in the range the field's metadata `meta` declares."""
    base, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise UserError(f"config key {key!r} may not be empty")
    try:
        if base is bool:
            if isinstance(value, bool):
                out = value
            elif str(value).lower() in _TRUE:
                out = True
            elif str(value).lower() in _FALSE:
                out = False
            else:
                raise ValueError
        elif base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            out = int(value)
        elif base is float:
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
        elif base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            out = str(value)
        elif typing.get_origin(base) in (list, tuple):
            (item_tp, *_) = typing.get_args(base) or (str,)
            items = value.split(",") if isinstance(value, str) else list(value)
            out = [coerce(key, item_tp, v.strip() if isinstance(v, str) else v, meta=meta) for v in items if v != ""]
            out = base.__origin__(out) if typing.get_origin(base) is tuple else out
        else:
            raise TypeError(f"unsupported config type {base} for {key}")
    except ValueError:
        raise UserError(f"config key {key!r} expects {_type_name(tp)}, got {value!r}") from None
    if choices and out not in choices:
        raise UserError(f"config key {key!r} must be one of {', '.join(map(str, choices))}; got {out!r}")
    if meta and base in (int, float):
        problem = range_problem(out, meta)
        if problem:
            raise UserError(f"config key {key!r} {problem}; got {out!r}")
    return out


def _where(source):
    """'command line', or 'in FILE' for a config file."""
    return source if source == "command line" else f"in {source}"


def check_config(cfg, source="command line", where=None):
    """Run the cross-field `check(prefix)` of the config and of every nested config; a ValueError
    becomes a one-line UserError ending with where the values came from (`where`, else the source)."""
    try:
        _check(cfg, "")
    except ValueError as e:
        raise UserError(f"{e} ({where or _where(source)})") from None
    return cfg


def _check(cfg, prefix):
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            _check(value, prefix + f.name + ".")
    if callable(getattr(cfg, "check", None)):
        cfg.check(prefix)


def _type_name(tp):
    base, optional = _unwrap_optional(tp)
    name = getattr(base, "__name__", str(base))
    if typing.get_origin(base) in (list, tuple):
        name = "a comma-separated list of " + typing.get_args(base)[0].__name__
    return name + (" or none" if optional else "")


def to_dict(cfg):
    return dataclasses.asdict(cfg)


def _set(cfg, dotted, value):
    *parents, leaf = dotted.split(".")
    obj = cfg
    for p in parents:
        obj = getattr(obj, p)
    setattr(obj, leaf, value)


def apply_overrides(cfg, overrides, source="command line", check=True):
    """Apply {dotted_key: raw_value}; an unknown key, a bad value or (with `check`) a failed cross-field
    check raises a one-line UserError naming the key and the source ('command line' or a file path)."""
    known = {name: (tp, f) for name, tp, f in flat_fields(type(cfg))}
    for key, raw in overrides.items():
        if key not in known:
            raise UserError(f"unknown config key {key!r} ({_where(source)}); see --help for the options")
        tp, f = known[key]
        try:
            value = coerce(key, tp, raw, f.metadata.get("choices"), f.metadata)
        except UserError as e:
            raise UserError(f"{e} ({_where(source)})") from None
        _set(cfg, key, value)
    return check_config(cfg, source) if check else cfg


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def read_config_file(path):
    """Read a JSON or TOML config file into flat {dotted_key: value}."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8-sig")  # a BOM (Notepad) is not part of the text
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return _flatten(data)


def load_saved_config(cls, path):
    """Rebuild a config from a run's saved config.json (unknown keys are an error)."""
    return apply_overrides(cls(), read_config_file(path), source=str(path))


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line, not a usage block, and takes flags only by their
    full name (`--epoch 5` is an unknown flag, not --epochs). A bare boolean flag means true and takes
    the next word as its value only if it is a boolean word (true/false/yes/no/on/off/1/0), so
    `predict --attention "I am hungry."` leaves the sentence an input."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.bool_flags = set()

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(bare_bool_flags(args, self.bool_flags), namespace)

    def parse_command(self, args):
        """Flags and inputs in any order (`predict a.jpg --run_dir r b.jpg`); after `--` every word is an input
        (Python 3.11's intermixed parsing would read a flag there)."""
        return self.parse_args(args) if "--" in args else self.parse_intermixed_args(args)


def bare_bool_flags(argv, bool_flags):
    """argv with each boolean flag not followed by a boolean word written `--flag=true`."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if arg in bool_flags and (following is None or following.lower() not in _TRUE | _FALSE):
            arg += "=true"
        out.append(arg)
    return out


def add_config_flags(parser, cls):
    """Add one --dotted.key flag per leaf field; defaults shown in --help, absent flags not set."""
    defaults = {name: _get(cls(), name) for name, _, _ in flat_fields(cls)}
    for name, tp, f in flat_fields(cls):
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        limits = f"; {range_text(f.metadata)}" if not choices and has_range(f.metadata) else ""
        is_bool = _unwrap_optional(tp)[0] is bool
        flag = {"nargs": "?", "const": "true"} if is_bool else {}  # a bare --flag means true
        if is_bool and isinstance(parser, OneLineParser):
            parser.bool_flags.add("--" + name)
        parser.add_argument(
            "--" + name,
            dest="cfg:" + name,
            default=argparse.SUPPRESS,
            **flag,
            metavar="{" + ",".join(map(str, choices)) + "}" if choices else _type_name(tp).upper().replace(" ", "_"),
            help=f"{help_text} (default: {defaults[name]!r}{limits})",
        )


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def config_from_args(cls, args):
    """Defaults <- --config FILE <- explicit flags; the cross-field checks run on the result."""
    cfg = cls()
    file = getattr(args, "config", None)
    if file:
        apply_overrides(cfg, read_config_file(file), source=file, check=False)
    flags = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg:")}
    apply_overrides(cfg, flags, check=False)
    sources = ([f"in {file}"] if file else []) + (["command line"] if flags else [])
    return check_config(cfg, where=" and ".join(sources) or "defaults")
