"""MicroLens files (format ``microlens``).

``MicroLens-100k_pairs.csv`` (``user,item,timestamp`` with a header) and
``MicroLens-100k_title_en.csv`` (``item,title`` without a header).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ...errors import DataError
from .base import Format, Interactions, SideTable, side_file
from .delimited import keyed_side, read_delimited, read_lines

_COLS = {"user": "user", "item": "item", "timestamp": "timestamp"}


def _titles(path: Path) -> SideTable:
    out: dict[str, list[str]] = {}
    reader = csv.reader(io.StringIO("\n".join(read_lines(path))))
    for row in reader:
        if not row:
            continue
        if len(row) != 2:
            raise DataError(f"expected 2 fields (item,title), found {len(row)}", where=f"{path}:{reader.line_num}")
        out[row[0].strip()] = [row[0].strip(), row[1]]
    return SideTable(["item", "title"], out)


class MicroLens(Format):
    """MicroLens-100k: interaction pairs and English titles, both CSV."""

    def read_interactions(self, card, folder: Path) -> Interactions:
        cols = {**_COLS, **card.data.get("columns", {})}
        return read_delimited(folder / card.files["interactions"], cols, sep=",")

    def read_side(self, card, folder: Path, role: str) -> SideTable | None:
        path = side_file(card, folder, role)
        if path is not None and role == "items":
            return _titles(path)
        return keyed_side(card, folder, role)
