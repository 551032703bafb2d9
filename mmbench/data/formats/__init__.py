"""Dataset formats: one module per format, each a :class:`Format` subclass registered under the
entry-point group ``mmbench.formats`` -- the built-in ones in mmbench's ``pyproject.toml``,
exactly as a plugin registers its own. :func:`get_format` is how prepare, import and export
reach a format; no other module names one.
"""
from __future__ import annotations

import difflib

from ... import registry
from ...errors import ConfigError, RegistryError
from .base import Format, Interactions, Layout, SideTable

__all__ = ["Format", "Interactions", "Layout", "SideTable", "get_format"]

ABILITIES = {"detect": "be imported", "write": "be exported"}  # optional method -> what it enables


def _offers(entry: registry.Entry, need: str) -> bool:
    try:
        return callable(getattr(entry.load(), need, None))
    except RegistryError:  # a broken plugin offers nothing
        return False


def get_format(name: str, need: str | None = None) -> Format:
    """The registered format ``name``, able to ``need`` ("detect": import, "write": export) if given.

    An unknown name or a format without the ability is an error listing the names that would do.
    """
    entries = registry.entries("formats")
    if name not in entries:
        able = [n for n, e in entries.items() if need is None or _offers(e, need)]
        close = difflib.get_close_matches(name, able, n=3, cutoff=0.5)
        what = f"formats that can {ABILITIES[need]}" if need else "registered formats"
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"{what}: {', '.join(able)}"
        raise RegistryError(f"unknown dataset format {name!r}", hint=hint)
    entry = entries[name]
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, Format)):
        raise RegistryError(f"format {name!r} ({entry.value}, from {entry.distribution}) is not a Format subclass",
                            hint="its entry point must name a subclass of mmbench.data.formats.Format")
    if need is not None and not _offers(entry, need):
        able = [n for n, e in entries.items() if _offers(e, need)]
        raise ConfigError(f"format {name!r} cannot {ABILITIES[need]} (it has no {need})",
                          hint=f"formats that can: {', '.join(able)}")
    return cls()
