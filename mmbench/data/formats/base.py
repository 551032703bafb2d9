"""The dataset-format protocol, and the data it reads into.

A format is one on-disk layout of a dataset (RecBole atomic files, MMRec, raw MovieLens, ...):
a :class:`Format` subclass registered under the entry-point group ``mmbench.formats``. The
built-in ones register in mmbench's own ``pyproject.toml`` exactly as a plugin does in its own;
a card names its format in ``dataset.format`` (or a source's ``format``).

What the rest of mmbench asks of a format:

* ``prepare``: :meth:`Format.read_interactions` (required), :meth:`Format.read_side` (item/user
  attributes), :meth:`Format.feature_rows` and :meth:`Format.feature_row_count` (how the card's
  row-aligned ``[features]`` files line up with items);
* ``mmbench import``: ``detect(folder, name) -> Layout`` -- which files of a user's folder hold
  the dataset (the card's ``[files]``/``[columns]``); the generic import finds the feature files
  under :attr:`Format.feature_dir` and pins every file's sha256;
* ``mmbench export``: ``write(ds, folder, name)`` -- the interactions and attribute tables of a
  prepared dataset (the generic export adds the features under :attr:`Format.feature_dir`).

``detect`` and ``write`` are optional: a format without them cannot be imported / exported,
and ``mmbench import`` / ``export`` say so. Errors name the file, the line and the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..ids import check_tokens, index_ids


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
    parts: tuple[str, ...] = ()  # the files of a set read from several (split files); ``part`` indexes them
    part: np.ndarray | None = None  # int8: which of ``parts`` each row came from

    def __len__(self) -> int:
        return len(self.user)

    def where(self, j: int) -> str:
        """``file:line`` of row ``j``, for error messages."""
        return f"{self.source if self.part is None else self.parts[self.part[j]]}:{self.line[j]}"

    def take(self, idx: np.ndarray) -> "Interactions":
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Interactions(self.user[idx], self.item[idx], pick(self.rating), pick(self.timestamp),
                            self.line[idx], self.source, pick(self.label), self.parts, pick(self.part))


@dataclass
class SideTable:
    """Attributes of items or users: field names and ``raw id -> row`` (strings); ``key`` is the id field."""

    fields: list[str]
    rows: dict[str, list[str]]
    key: int = 0


@dataclass
class Layout:
    """What ``mmbench import`` found in a folder, as the new card will say it."""

    files: dict[str, str]  # role -> file name ([files]: interactions or train/valid/test, items, ...)
    columns: dict[str, str] = field(default_factory=dict)  # role -> column ([columns])
    feature_rows: str = "item-id"  # dataset.feature_rows: how feature rows align to items


class Format:
    """Base class of dataset formats: subclasses implement ``read_interactions`` and, where the
    layout has them, ``read_side``; ``detect`` and ``write`` when the format can be imported and
    exported. Formats hold no state: one instance reads any number of cards."""

    feature_dir = ""  # folder (relative: "" or "name/") where import finds and export writes *.npy features

    def read_interactions(self, card, folder: Path) -> Interactions:
        """Interactions of ``card`` (already seen through its source) from ``folder``."""
        raise NotImplementedError

    def read_side(self, card, folder: Path, role: str) -> SideTable | None:
        """Item (``role="items"``) or user (``"users"``) attributes, or None when the source has none."""
        return None

    def feature_row_count(self, card, inter: Interactions) -> int | None:
        """Rows every feature file must have exactly, fixed by the unfiltered interactions (None: not fixed)."""
        return None

    def feature_rows(self, card, folder: Path, raw_item_ids: list[str], where: str) -> np.ndarray:
        """Row of each item (in our item order) in the card's row-aligned feature files.

        ``dataset.feature_rows``: ``item-id`` (row i = integer item id i) or ``items-file`` (row i
        = the i-th row of ``files.items``); a format may know more ways.
        """
        how = card.meta.get("feature_rows", "item-id")
        if how == "item-id":
            return index_ids(np.asarray(raw_item_ids, dtype=str), "item", lambda j: where,
                             "row-aligned features need integer item ids; or set dataset.feature_rows = "
                             "'items-file' (rows follow files.items)")
        if how != "items-file":
            raise DataError(f"dataset.feature_rows = {how!r} does not apply to format {card.format!r}",
                            where=str(card.path), hint="use 'item-id' or 'items-file'")
        side = self.read_side(card, folder, "items")
        if side is None:
            raise DataError("dataset.feature_rows = 'items-file' needs files.items", where=str(card.path))
        return rows_of(raw_item_ids, {rid: i for i, rid in enumerate(side.rows)}, where)


def rows_of(raw_item_ids: list[str], lookup: dict[str, int], where: str) -> np.ndarray:
    """Feature-file row of each item through ``lookup`` (raw id -> row); every item must have one."""
    missing = [r for r in raw_item_ids if r not in lookup]
    if missing:
        raise DataError(f"item {missing[0]!r} has no row in the feature files ({len(missing)} items missing)",
                        where=where)
    return np.asarray([lookup[r] for r in raw_item_ids], dtype=np.int64)


def side_file(card, folder: Path, role: str) -> Path | None:
    """The file of ``files.<role>`` when the card names one and the source has it."""
    name = card.files.get(role)
    if not name or not (folder / name).is_file():
        return None
    return folder / name


# ----------------------------------------------------------------------------- checked columns
LIMITS = {"rating": float(np.finfo(np.float32).max), "timestamp": 2.0 ** 63,  # |value| <= the stored type's range
          "label": float(np.finfo(np.float64).max)}


def _numeric(path: Path, values: list[str], lines: np.ndarray, field: str, limit: float) -> np.ndarray:
    """Floats of a column: ASCII decimal numbers, finite, ``|x| <= limit`` (the type they are stored
    in); the first value that is not is an error naming its line."""
    def fail(j: int, what: str):
        return DataError(f"field {field!r} {what}: {values[j][:60]!r}", where=f"{path}:{lines[j]}")

    joined = "".join(values)
    if not joined.isascii() or "_" in joined:  # Python would read '١٢' and '1_0' as numbers
        raise fail(next(j for j, v in enumerate(values) if not v.isascii() or "_" in v), "is not an ASCII number")
    try:
        out = np.asarray(values, dtype=np.float64)
    except ValueError:
        for j, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise fail(j, "is not a number") from None
        raise
    bad = ~np.isfinite(out)
    if bad.any():
        raise fail(int(np.argmax(bad)), "is not finite")
    big = np.abs(out) > limit
    if big.any():
        raise fail(int(np.argmax(big)), f"is out of range (|x| <= {limit:.4g})")
    return out


def columns_to_interactions(path: Path, cols: dict[str, list[str]], line_no: np.ndarray,
                            columns: dict) -> Interactions:
    """Parsed columns (role -> raw strings, one per data line) -> checked Interactions: ids valid
    tokens (:mod:`mmbench.data.ids`), rating/timestamp finite ASCII numbers within the range of
    the type they are stored in, split labels 0/1/2; errors name file:line and the field."""
    for r in ("user", "item"):
        check_tokens(cols[r], columns[r], lambda j: f"{path}:{line_no[j]}")
    num = {r: _numeric(path, cols[r], line_no, columns[r], LIMITS[r]) for r in LIMITS if r in cols}
    rating, ts, label = num.get("rating"), num.get("timestamp"), None
    if "label" in cols:
        lab = num["label"]
        bad = ~np.isin(lab, (0, 1, 2))
        if bad.any():
            j = int(np.argmax(bad))
            raise DataError(f"field {columns['label']!r}: split label must be 0, 1 or 2, got {cols['label'][j]!r}",
                            where=f"{path}:{line_no[j]}")
        label = lab.astype(np.int8)
    return Interactions(np.asarray(cols["user"]), np.asarray(cols["item"]), rating, ts, line_no, str(path), label)


# ----------------------------------------------------------------------------- writing (export)
def number_strings(values: np.ndarray) -> list[str]:
    """Numbers as text that reads back to the same value (integers without a decimal point)."""
    if np.issubdtype(values.dtype, np.integer):
        return [str(int(v)) for v in values]
    return [repr(float(v)) for v in values]


def tsv_text(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join("\t".join(r) for r in [header, *rows]) + "\n"


def attribute_rows(ds, role: str) -> tuple[list[str], list[list[str]]] | None:
    """Attribute table of a prepared dataset's items/users with the id column first (found by
    matching the raw ids; added as ``raw_id`` when no column holds them), or None."""
    p = ds.path / ("item_attributes.tsv" if role == "items" else "user_attributes.tsv")
    if not p.is_file():
        return None
    lines = p.read_text(encoding="utf-8").split("\n")[:-1]
    header = lines[0].split("\t")[1:]
    rows = [ln.split("\t")[1:] for ln in lines[1:]]
    raw = ds.item_raw_ids() if role == "items" else ds.user_raw_ids()
    key = next((j for j in range(len(header)) if all(r[j] == raw[i] for i, r in enumerate(rows))), None)
    if key is None:
        return ["raw_id", *header], [[raw[i], *r] for i, r in enumerate(rows)]
    order = [key] + [j for j in range(len(header)) if j != key]
    return [header[j] for j in order], [[r[j] for j in order] for r in rows]
