"""Names and paths a user or a file gives: one rule each, checked where they enter.

A *name* (dataset, card, suite, label, format) is 1 to 100 characters of ASCII letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit and without ``..``: it can
be a folder name on every platform and can never climb out of the folder it names a
child of. A *feature key* is ``<modality>/<name>``. A *path inside a root* is resolved (symlinks followed) and must stay in it.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

NAME_RULE = "1-100 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'"
FEATURE_KEY_RULE = ("'<modality>/<name>': a modality of lower-case ASCII letters and digits (single '_' "
                    f"between them), a name of {NAME_RULE}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MODALITY = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")  # never '__': it joins modality and name on disk


def is_name(value) -> bool:
    """Whether ``value`` follows the name rule."""
    return isinstance(value, str) and bool(_NAME.fullmatch(value)) and ".." not in value


def check_name(value, what: str, where: str | None = None) -> str:
    """``value`` if it is a valid name, else a ConfigError naming ``what`` and the rule."""
    if not is_name(value):
        raise ConfigError(f"{what} {value!r} is not a valid name", where=where, hint=f"use {NAME_RULE}")
    return value


def check_feature_key(value, where: str | None = None) -> str:
    """``value`` if it is a feature key (``text/all-MiniLM-L6-v2``), else a ConfigError with the rule."""
    modality, sep, name = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not (sep and _MODALITY.fullmatch(modality) and is_name(name)):
        raise ConfigError(f"feature key {value!r} is not valid", where=where, hint=f"use {FEATURE_KEY_RULE}")
    return value


def inside(root: str | Path, path: str | Path, what: str, where: str | None = None) -> Path:
    """``root / path`` resolved; a ConfigError if it leaves ``root`` (``..``, an absolute
    path, a symlink pointing out)."""
    base = Path(root).resolve()
    try:
        target = (base / path).resolve()
    except (ValueError, OSError, RuntimeError) as e:  # a NUL byte, a symlink loop (RuntimeError before 3.13)
        raise ConfigError(f"{what} {str(path)[:100]!r} is not a usable path ({e})", where=where) from None
    if target != base and base not in target.parents:
        raise ConfigError(f"{what} {str(path)!r} points outside {base}", where=where,
                          hint="give a path inside it")
    return target
