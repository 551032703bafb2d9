"""Delimited text files, shared by every format: lines, headers, rows, interaction columns, keyed tables.

Errors name the file, the line and the field.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...io import read_bytes
from .base import Interactions, SideTable, columns_to_interactions, side_file

ATOMIC_TYPES = ("token", "float", "token_seq", "float_seq")  # RecBole's header field types
UTF8 = ("utf-8",)
LATIN = ("utf-8", "latin-1")


def read_lines(path: Path, encodings: tuple[str, ...] = UTF8) -> list[str]:
    """Lines of a text file (a regular file: :func:`mmbench.io.read_bytes`) without line ends; the
    first encoding that decodes wins."""
    raw = read_bytes(path)
    if not raw.strip():
        raise DataError("file is empty", where=str(path))
    err = None
    for enc in encodings:
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError as e:
            err = e
    else:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"not {encodings[0].upper()} text (byte {err.start})", where=f"{path}:{line}",
                        hint="re-encode the file as UTF-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def splitter(sep: str):
    """``line -> fields``: CSV quoting for commas, a plain split otherwise."""
    if sep == ",":
        return lambda line: next(csv.reader([line]))
    return lambda line: line.split(sep)


def header_names(path: Path, first: str, sep: str = "\t") -> list[str]:
    """Column names of a header line; a RecBole ``name:type`` field counts as ``name``."""
    names = []
    for i, f in enumerate(splitter(sep)(first)):
        name, colon, typ = f.strip().partition(":")
        if colon and typ not in ATOMIC_TYPES:
            name = f.strip()  # a colon that is not a RecBole type suffix is part of the name
        if not name:
            raise DataError(f"header field {i + 1} is empty", where=f"{path}:1",
                            hint="the first line must name the columns")
        names.append(name)
    return names


def split_rows(path: Path, lines: list[str], n: int, *, sep: str = "\t",
               start: int = 2) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-blank line (the first is line ``start``); each has ``n`` fields."""
    split = splitter(sep)
    rows = []
    for ln, line in enumerate(lines, start=start):
        if not line.strip():
            continue
        try:
            parts = split(line)
        except csv.Error as e:
            raise DataError(f"malformed CSV row ({e})", where=f"{path}:{ln}") from None
        if len(parts) != n:
            raise DataError(f"expected {n} fields, found {len(parts)}", where=f"{path}:{ln}",
                            hint=f"fields are separated by {sep!r}; check for a stray separator or a cut line")
        rows.append((ln, parts))
    return rows


def column_index(path: Path, names: list[str], columns: dict) -> dict[str, int]:
    """Role -> position of its column: user and item must be there; rating, timestamp, label are read if so."""
    idx = {}
    for role in ("user", "item"):
        col = columns[role]
        if col not in names:
            raise DataError(f"column {col!r} ({role}) missing from the header (have {names})", where=f"{path}:1",
                            hint="set [columns] in the card")
        idx[role] = names.index(col)
    for role in ("rating", "timestamp", "label"):
        col = columns.get(role)
        if col and col in names:
            idx[role] = names.index(col)
    return idx


def rows_to_interactions(path: Path, rows: list[tuple[int, list[str]]], idx: dict[str, int], columns: dict,
                         *, strip: bool = True) -> Interactions:
    """Split rows -> checked Interactions (``idx``: role -> column position, from :func:`column_index`)."""
    if not rows:
        raise DataError("file has a header but no interactions", where=str(path))
    cols = {r: [parts[k].strip() if strip else parts[k] for _, parts in rows] for r, k in idx.items()}
    line_no = np.asarray([ln for ln, _ in rows], dtype=np.int64)
    return columns_to_interactions(path, cols, line_no, columns)


def read_delimited(path: Path, columns: dict, *, sep: str = "\t", names: list[str] | None = None,
                   encodings: tuple[str, ...] = UTF8) -> Interactions:
    """Interactions from a delimited file. ``names`` given: the file has no header line.

    ``columns`` maps role (user/item/rating/timestamp/label) to a column name; user and item are
    required, the others are read when the column exists.
    """
    lines = read_lines(path, encodings)
    if names is None:
        names, lines, start = header_names(path, lines[0], sep), lines[1:], 2
    else:
        start = 1
    idx = column_index(path, names, columns)
    return rows_to_interactions(path, split_rows(path, lines, len(names), sep=sep, start=start), idx, columns)


def tsv_table(path: Path, encodings: tuple[str, ...] = LATIN) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A tab-separated file with a header line: its column names and ``(line number, fields)`` rows."""
    lines = read_lines(path, encodings)
    names = header_names(path, lines[0])
    return names, split_rows(path, lines[1:], len(names))


def keyed_rows(path: Path, rows: list[tuple[int, list[str]]], k: int, field: str) -> dict[str, list[str]]:
    """``id -> row`` keyed by column ``k``; an id seen twice is an error naming its line."""
    out: dict[str, list[str]] = {}
    for ln, r in rows:
        if r[k] in out:
            raise DataError(f"duplicate id {r[k]!r} in column {field!r}", where=f"{path}:{ln}")
        out[r[k]] = r
    return out


def keyed_tsv(path: Path, key: str | None) -> SideTable:
    """A tab-separated attribute table keyed by column ``key`` (the first column when it is absent)."""
    names, rows = tsv_table(path)
    k = names.index(key) if key in names else 0
    return SideTable(names, keyed_rows(path, rows, k, names[k]), k)


def keyed_side(card, folder: Path, role: str) -> SideTable | None:
    """``files.<role>`` as a tab-separated table keyed by the card's user/item column, if the source has it."""
    path = side_file(card, folder, role)
    return None if path is None else keyed_tsv(path, card.columns.get("item" if role == "items" else "user"))
