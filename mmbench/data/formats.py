"""Readers for interaction files. Errors name the file, the line and the field.

RecBole atomic files: tab-separated, a header of ``name:type`` fields
(``token``, ``float``, ``token_seq``, ``float_seq``), one row per line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

ATOMIC_TYPES = ("token", "float", "token_seq", "float_seq")


@dataclass
class Interactions:
    """Raw interactions as read from a file, before any filtering or id mapping."""

    user: np.ndarray  # str (object-free: numpy unicode)
    item: np.ndarray
    rating: np.ndarray | None  # float64
    timestamp: np.ndarray | None  # float64
    line: np.ndarray  # int64: 1-based line number in the source, for error messages
    source: str
    label: np.ndarray | None = None  # int8 preset split label (MMRec x_label), if any

    def __len__(self) -> int:
        return len(self.user)

    def take(self, idx: np.ndarray) -> "Interactions":
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Interactions(self.user[idx], self.item[idx], pick(self.rating), pick(self.timestamp),
                            self.line[idx], self.source, pick(self.label))


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", where=str(path), hint="run `mmbench prepare` again or check the card's source") from None
    if not raw.strip():
        raise DataError("file is empty", where=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte {e.start})", where=f"{path}:{line}",
                        hint="re-encode the file as UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_atomic_header(path: Path, first: str) -> list[tuple[str, str]]:
    fields = []
    for i, f in enumerate(first.split("\t")):
        name, sep, typ = f.partition(":")
        if not sep or typ not in ATOMIC_TYPES or not name:
            raise DataError(f"header field {i + 1} {f!r} is not 'name:type' with type in {ATOMIC_TYPES}",
                            where=f"{path}:1", hint="the first line of an atomic file must be its header")
        fields.append((name, typ))
    return fields


def read_table(path: str | Path, *, sep: str = "\t") -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Read an atomic file into its header and rows of strings (column count checked)."""
    path = Path(path)
    lines = _read_lines(path)
    header = read_atomic_header(path, lines[0])
    n = len(header)
    rows = []
    for ln, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        parts = line.split(sep)
        if len(parts) != n:
            raise DataError(f"expected {n} fields, found {len(parts)}", where=f"{path}:{ln}",
                            hint="fields are tab-separated; check for a stray tab or a cut line")
        rows.append(parts)
    return header, rows


def _numeric(path: Path, values: list[str], lines: np.ndarray, field: str) -> np.ndarray:
    """Floats of a column; a non-number or non-finite value is an error naming its line."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except ValueError:
        for v, ln in zip(values, lines):
            try:
                float(v)
            except ValueError:
                raise DataError(f"field {field!r} is not a number: {v!r}", where=f"{path}:{ln}") from None
        raise
    bad = ~np.isfinite(out)
    if bad.any():
        j = int(np.argmax(bad))
        raise DataError(f"field {field!r} is not finite: {values[j]!r}", where=f"{path}:{lines[j]}")
    return out


def columns_to_interactions(path: Path, cols: dict[str, list[str]], line_no: np.ndarray,
                            columns: dict) -> Interactions:
    """Parsed columns (role -> raw strings, one per data line) -> checked Interactions: ids
    non-empty, rating/timestamp finite numbers, split labels 0/1/2; errors name file:line."""
    for r in ("user", "item"):
        for v, ln in zip(cols[r], line_no):
            if not v.strip():
                raise DataError(f"empty {r} id (field {columns[r]!r})", where=f"{path}:{ln}")
    rating = _numeric(path, cols["rating"], line_no, columns["rating"]) if "rating" in cols else None
    ts = _numeric(path, cols["timestamp"], line_no, columns["timestamp"]) if "timestamp" in cols else None
    label = None
    if "label" in cols:
        lab = _numeric(path, cols["label"], line_no, columns["label"])
        bad = ~np.isin(lab, (0, 1, 2))
        if bad.any():
            j = int(np.argmax(bad))
            raise DataError(f"field {columns['label']!r}: split label must be 0, 1 or 2, got {cols['label'][j]!r}",
                            where=f"{path}:{line_no[j]}")
        label = lab.astype(np.int8)
    return Interactions(np.asarray(cols["user"]), np.asarray(cols["item"]), rating, ts, line_no, str(path), label)


def read_atomic_interactions(path: str | Path, columns: dict) -> Interactions:
    """Read a RecBole ``.inter`` file; ``columns`` maps role (user/item/rating/timestamp) to header name."""
    path = Path(path)
    lines = _read_lines(path)
    header = read_atomic_header(path, lines[0])
    names = [n for n, _ in header]
    idx = {}
    for role in ("user", "item"):
        col = columns[role]
        if col not in names:
            raise DataError(f"column {col!r} ({role}) missing from the header (have {names})", where=f"{path}:1")
        idx[role] = names.index(col)
    for role in ("rating", "timestamp", "label"):
        col = columns.get(role)
        if col and col in names:
            idx[role] = names.index(col)
    n = len(header)
    body = [(ln, line) for ln, line in enumerate(lines[1:], start=2) if line]
    if not body:
        raise DataError("file has a header but no interactions", where=str(path))
    cols: dict[str, list[str]] = {r: [] for r in idx}
    line_no = np.empty(len(body), dtype=np.int64)
    for j, (ln, line) in enumerate(body):
        parts = line.split("\t")
        if len(parts) != n:
            raise DataError(f"expected {n} fields, found {len(parts)}", where=f"{path}:{ln}",
                            hint="fields are tab-separated; check for a stray tab or a cut line")
        line_no[j] = ln
        for r, k in idx.items():
            cols[r].append(parts[k])
    return columns_to_interactions(path, cols, line_no, columns)


def read_atomic_side(path: str | Path, key: str) -> tuple[list[str], dict[str, list[str]]]:
    """Read a side file (``.item``/``.user``): returns field names and ``id -> row`` (strings)."""
    path = Path(path)
    header, rows = read_table(path)
    names = [n for n, _ in header]
    if key not in names:
        raise DataError(f"key column {key!r} missing from the header (have {names})", where=f"{path}:1")
    k = names.index(key)
    out: dict[str, list[str]] = {}
    for j, row in enumerate(rows):
        if row[k] in out:
            raise DataError(f"duplicate id {row[k]!r} in column {key!r}", where=f"{path}:{j + 2}")
        out[row[k]] = row
    return names, out
