"""Names and paths a user or a file gives: one rule each, checked where they enter.

A *name* (dataset, card, suite, label, format) is 1 to 100 characters of ASCII letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit and without ``..``: it can
be a folder name on every platform and can never climb out of the folder it names a
child of. A *path inside a root* is resolved (symlinks followed) and must stay in it.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

NAME_RULE = "1-100 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(value, what: str, where: str | None = None) -> str:
    """``value`` if it is a valid name, else a ConfigError naming ``what`` and the rule."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ConfigError(f"{what} {value!r} is not a valid name", where=where, hint=f"use {NAME_RULE}")
    return value


def inside(root: str | Path, path: str | Path, what: str, where: str | None = None) -> Path:
    """``root / path`` resolved; a ConfigError if it leaves ``root`` (``..``, an absolute
    path, a symlink pointing out)."""
    base = Path(root).resolve()
    target = (base / path).resolve()
    if target != base and base not in target.parents:
        raise ConfigError(f"{what} {str(path)!r} points outside {base}", where=where,
                          hint="give a path inside it")
    return target
