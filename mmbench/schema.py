"""Strict validation of TOML/JSON configs: unknown keys and wrong types are errors.

A spec maps each allowed key to ``(type_or_tuple, required)`` or to a nested spec
(``dict``). ``list[int]`` style element checks use ``ListOf(type)``.
"""
from __future__ import annotations

import difflib
import math
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class ListOf:
    item: Any

    def __repr__(self) -> str:
        return f"list of {_tname(self.item)}"


@dataclass(frozen=True)
class Table:
    """A nested table; ``open=True`` accepts any keys (e.g. model hyper-parameters)."""

    spec: dict
    required: bool = False
    open: bool = False


@dataclass(frozen=True)
class ArrayOf:
    """An array of tables (``[[models]]``)."""

    spec: dict
    required: bool = False


def _tname(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(_tname(x) for x in t)
    return getattr(t, "__name__", repr(t))


def _type_ok(value: Any, t: Any) -> bool:
    if isinstance(t, tuple):
        return any(_type_ok(value, x) for x in t)
    if isinstance(t, ListOf):
        return isinstance(value, list) and all(_type_ok(v, t.item) for v in value)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def validate(obj: Any, spec: dict, *, where: str, path: str = "") -> None:
    if not isinstance(obj, dict):
        raise ConfigError(f"{path or 'top level'} must be a table", where=where)
    for key, value in obj.items():
        full = f"{path}.{key}" if path else key
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(sorted(spec))}"
            raise ConfigError(f"unknown key {full!r}", where=where, hint=hint)
        rule = spec[key]
        if isinstance(rule, Table):
            if not isinstance(value, dict):
                raise ConfigError(f"{full!r} must be a table", where=where)
            if not rule.open:
                validate(value, rule.spec, where=where, path=full)
        elif isinstance(rule, ArrayOf):
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{full!r} must be an array of tables ([[{full}]])", where=where)
            for i, v in enumerate(value):
                validate(v, rule.spec, where=where, path=f"{full}[{i}]")
        else:
            t, _ = rule
            if not _type_ok(value, t):
                raise ConfigError(f"{full!r} must be {_tname(t)}, got {type(value).__name__} {str(value)[:60]!r}",
                                  where=where)
            if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, list) else
                                                                            [value])):
                raise ConfigError(f"{full!r} must be finite, got {value!r}", where=where)
    for key, rule in spec.items():
        required = rule.required if isinstance(rule, (Table, ArrayOf)) else rule[1]
        if required and key not in obj:
            full = f"{path}.{key}" if path else key
            raise ConfigError(f"missing required key {full!r}", where=where)


def load_toml(path: str | Path) -> dict:
    """The table of a TOML file (a regular file); anything malformed is a ConfigError naming it."""
    from .errors import DataError
    from .io import read_bytes

    path = Path(path)
    try:
        return tomllib.loads(read_bytes(path).decode("utf-8"))
    except DataError as e:  # not found, a folder, a fifo: the same line, as a config problem
        raise ConfigError(str(e)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", where=str(path)) from None
    except ValueError as e:  # TOMLDecodeError, or an integer of thousands of digits
        raise ConfigError(f"invalid TOML: {str(e)[:200]}", where=str(path)) from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply", where=str(path)) from None
