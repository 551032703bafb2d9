"""GroupLens MovieLens files (format ``movielens-raw``).

``u.data`` (tab) / ``ratings.dat`` (``::``), ``u.item`` (``|``) / ``movies.dat``, ``u.user`` /
``users.dat``; Latin-1 text. Items get the fields ``item_id movie_title release_year class``
(genres space-separated, like RecBole's files).
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError
from ...io import open_regular
from .base import Format, Interactions, SideTable, side_file
from .delimited import LATIN, read_delimited, read_lines

ML_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
             "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
             "War", "Western")
_COLS = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def _sep(path: Path) -> str:
    """``::`` (ml-1m, ml-10m) or tab (ml-100k), from the first line."""
    with open_regular(path) as f:
        return "::" if b"::" in f.readline() else "\t"


def _split_title(title: str, date: str = "") -> tuple[str, str]:
    m = _YEAR.match(title)
    year = date[-4:] if len(date) >= 4 and date[-4:].isdigit() else ""
    if m:
        return m.group(1), year or m.group(2)
    return title.strip(), year


def _dat_items(path: Path, lines: list[str]) -> dict[str, list[str]]:
    """ml-1m: ``MovieID::Title (Year)::Genre|Genre``."""
    rows: dict[str, list[str]] = {}
    for ln, line in enumerate(lines, start=1):
        if not line:
            continue
        parts = line.split("::")
        if len(parts) != 3:
            raise DataError(f"expected 3 fields separated by '::', found {len(parts)}", where=f"{path}:{ln}")
        title, year = _split_title(parts[1])
        rows[parts[0]] = [parts[0], title, year, " ".join(g for g in parts[2].split("|") if g)]
    return rows


def _pipe_items(path: Path, lines: list[str], folder: Path) -> dict[str, list[str]]:
    """ml-100k: ``id|title|release date|video release date|IMDb URL|19 genre flags``."""
    genres = list(ML_GENRES)
    if (folder / "u.genre").is_file():
        pairs = [ln.split("|") for ln in read_lines(folder / "u.genre", LATIN) if ln.strip()]
        genres = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    rows: dict[str, list[str]] = {}
    for ln, line in enumerate(lines, start=1):
        if not line:
            continue
        parts = line.split("|")
        if len(parts) != 5 + len(genres):
            raise DataError(f"expected {5 + len(genres)} fields separated by '|', found {len(parts)}",
                            where=f"{path}:{ln}")
        title, year = _split_title(parts[1], parts[2])
        flags = parts[5:]
        bad = [f for f in flags if f not in ("0", "1")]
        if bad:
            raise DataError(f"genre flag {bad[0]!r} is not 0 or 1", where=f"{path}:{ln}")
        rows[parts[0]] = [parts[0], title, year, " ".join(g for g, f in zip(genres, flags) if f == "1")]
    return rows


def _users(path: Path) -> SideTable:
    rows: dict[str, list[str]] = {}
    lines = read_lines(path, LATIN)
    dat = "::" in lines[0]
    fields = ["user_id", "gender", "age", "occupation", "zip_code"] if dat else \
        ["user_id", "age", "gender", "occupation", "zip_code"]
    for ln, line in enumerate(lines, start=1):
        if not line:
            continue
        parts = line.split("::" if dat else "|")
        if len(parts) != 5:
            raise DataError(f"expected 5 fields, found {len(parts)}", where=f"{path}:{ln}")
        rows[parts[0]] = parts
    return SideTable(fields, rows)


class MovieLensRaw(Format):
    """MovieLens as GroupLens ships it (ml-100k ``u.*`` files, ml-1m ``*.dat`` files)."""

    def read_interactions(self, card, folder: Path) -> Interactions:
        path = folder / card.files["interactions"]
        return read_delimited(path, _COLS, sep=_sep(path), names=["user_id", "item_id", "rating", "timestamp"],
                              encodings=LATIN)

    def read_side(self, card, folder: Path, role: str) -> SideTable | None:
        path = side_file(card, folder, role)
        if path is None:
            return None
        if role == "users":
            return _users(path)
        lines = read_lines(path, LATIN)
        rows = _dat_items(path, lines) if lines and "::" in lines[0] else _pipe_items(path, lines, folder)
        return SideTable(["item_id", "movie_title", "release_year", "class"], rows)
