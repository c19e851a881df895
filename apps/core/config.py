"""Typed dataclass configs <-> CLI flags and JSON/TOML files.

Nested dataclasses become dotted flags (`--data.source folder`). Unknown keys and badly typed
values raise `UserError` naming the key; the resolved config is saved with every run.
"""
import argparse
import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path

from apps.core.errors import UserError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def field(default, help="", choices=None):
    """A dataclass field with a help text and optional allowed values."""
    meta = {"help": help, "choices": choices}
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


def coerce(key, tp, value, choices=None):
    """Convert `value` (from a file or the command line) to type `tp`, or raise UserError."""
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
            out = [coerce(key, item_tp, v.strip() if isinstance(v, str) else v) for v in items if v != ""]
            out = base.__origin__(out) if typing.get_origin(base) is tuple else out
        else:
            raise TypeError(f"unsupported config type {base} for {key}")
    except ValueError:
        raise UserError(f"config key {key!r} expects {_type_name(tp)}, got {value!r}") from None
    if choices and out not in choices:
        raise UserError(f"config key {key!r} must be one of {', '.join(map(str, choices))}; got {out!r}")
    return out


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


def apply_overrides(cfg, overrides, source="command line"):
    """Apply {dotted_key: raw_value}; unknown keys raise UserError naming the key and the source."""
    known = {name: (tp, f) for name, tp, f in flat_fields(type(cfg))}
    for key, raw in overrides.items():
        if key not in known:
            raise UserError(f"unknown config key {key!r} in {source}; see --help for the options")
        tp, f = known[key]
        _set(cfg, key, coerce(key, tp, raw, f.metadata.get("choices")))
    return cfg


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
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return _flatten(data)


def save_config(cfg, path):
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")


def load_saved_config(cls, path):
    """Rebuild a config from a run's saved config.json (unknown keys are an error)."""
    return apply_overrides(cls(), read_config_file(path), source=str(path))


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line, not a usage block."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")


def add_config_flags(parser, cls):
    """Add one --dotted.key flag per leaf field; defaults shown in --help, absent flags not set."""
    defaults = {name: _get(cls(), name) for name, _, _ in flat_fields(cls)}
    for name, tp, f in flat_fields(cls):
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        flag = {"nargs": "?", "const": "true"} if _unwrap_optional(tp)[0] is bool else {}  # a bare --flag means true
        parser.add_argument(
            "--" + name,
            dest="cfg:" + name,
            default=argparse.SUPPRESS,
            **flag,
            metavar="{" + ",".join(map(str, choices)) + "}" if choices else _type_name(tp).upper().replace(" ", "_"),
            help=f"{help_text} (default: {defaults[name]!r})",
        )


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def config_from_args(cls, args):
    """Defaults <- --config FILE <- explicit flags."""
    cfg = cls()
    if getattr(args, "config", None):
        apply_overrides(cfg, read_config_file(args.config), source=args.config)
    flags = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg:")}
    return apply_overrides(cfg, flags)
