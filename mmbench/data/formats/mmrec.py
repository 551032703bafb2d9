"""MMRec files (format ``mmrec``).

A tab-separated ``.inter`` with an untyped header (``userID itemID rating [timestamp] x_label``;
typed headers are accepted too); ids are 0-based contiguous integers, ``x_label`` is the split
(0/1/2), and feature files are row-aligned to ``itemID``. Optional ``files.user_mapping`` /
``files.item_mapping`` (MMRec's ``u_id_mapping.csv`` / ``i_id_mapping.csv``: raw id <TAB> index,
with a header) restore the raw ids. ``files.items`` is a TSV with a header keyed by its first
column; with ``files.original_ids`` (a row-aligned copy of the ``.inter`` with original ids, as
the lfm2k resource ships) the items file is keyed by the original item id.

Import reads ``<name>.inter``; ``x_label`` -> preset split, else a random 8:1:1 split per user
(seed 2020). Every ``*.npy`` beside it is a row-aligned item feature (row i = itemID i, or the
row the item mapping gives); ``u_id_mapping.csv`` / ``i_id_mapping.csv`` restore raw ids and
``<name>.items.tsv`` / ``<name>.users.tsv`` (header, key column first) carry attributes.
Export writes the same files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..ids import check_tokens, index_ids
from ...io import atomic_write_text
from .base import Format, Interactions, Layout, SideTable, attribute_rows, number_strings, rows_of, side_file, \
    tsv_text
from .delimited import header_names, keyed_side, keyed_tsv, read_delimited, read_lines, split_rows
from .recbole import find_inter, require_columns

COLUMNS = {"user": "userID", "item": "itemID", "rating": "rating", "timestamp": "timestamp", "label": "x_label"}
MAPPINGS = (("user_mapping", "u_id_mapping.csv"), ("item_mapping", "i_id_mapping.csv"))


def _check_index_ids(inter: Interactions, role: str, field: str, contiguous: bool) -> None:
    """MMRec ids are index ids (:mod:`mmbench.data.ids`); items: exactly 0..n-1 (feature row i = item i)."""
    ids = np.unique(index_ids(inter.user if role == "user" else inter.item, field, inter.where,
                              "MMRec files use 0-based integer ids; use format 'recbole' for tokens"))
    if contiguous and len(ids) and (ids[0] != 0 or ids[-1] != len(ids) - 1):
        present = np.zeros(int(ids[-1]) + 1, dtype=bool)
        present[ids] = True
        gap = int(np.argmin(present))
        raise DataError(f"field {field!r}: ids are not contiguous 0..{int(ids[-1])}: id {gap} never occurs "
                        f"({len(ids)} distinct ids)", where=inter.source,
                        hint="MMRec needs 0-based contiguous item ids (row i of each feature file is item i); "
                             "re-index the items or import as recbole")


def read_mapping(path: Path, index_col: str) -> dict[str, str]:
    """MMRec id mapping (``raw<TAB>index`` with a header) -> ``index -> raw``."""
    lines = read_lines(path)
    sep = "\t" if "\t" in lines[0] else ","
    names = header_names(path, lines[0], sep)
    if len(names) != 2 or index_col not in names:
        raise DataError(f"expected two columns, one named {index_col!r} (have {names})", where=f"{path}:1")
    k = names.index(index_col)
    out: dict[str, str] = {}
    rows = split_rows(path, lines[1:], 2, sep=sep)
    where = lambda j: f"{path}:{rows[j][0]}"  # noqa: E731
    index_ids(np.asarray([parts[k].strip() for _, parts in rows], dtype=str), index_col, where)
    check_tokens([parts[1 - k].strip() for _, parts in rows], names[1 - k], where)
    for ln, parts in rows:
        idx, raw = parts[k].strip(), parts[1 - k].strip()
        if idx in out:
            raise DataError(f"field {index_col!r}: index {idx!r} is mapped twice", where=f"{path}:{ln}")
        out[idx] = raw
    return out


def _apply_mapping(inter: Interactions, role: str, mapping: dict[str, str], path: Path) -> None:
    arr = inter.user if role == "user" else inter.item
    missing = [j for j, v in enumerate(arr.tolist()) if v not in mapping]
    if missing:
        j = missing[0]
        raise DataError(f"{role} index {str(arr[j])!r} (line {inter.line[j]} of {Path(inter.source).name}) has no "
                        f"raw id in the mapping", where=str(path))
    mapped = np.asarray([mapping[v] for v in arr.tolist()])
    if role == "user":
        inter.user = mapped
    else:
        inter.item = mapped


def _columns(card) -> dict[str, str]:
    return {**COLUMNS, **card.data.get("columns", {})}


def _items(card, folder: Path) -> SideTable:
    cols = {"item": "itemID", **card.data.get("columns", {})}
    table = keyed_tsv(folder / card.files["items"], cols["item"])
    orig_name = card.files.get("original_ids")
    if not orig_name:
        return table
    # items are keyed by the original id: map them through the row-aligned copy of the .inter
    inter_path = folder / card.files["interactions"]
    ours = read_lines(inter_path)
    theirs = read_lines(folder / orig_name)
    if len(ours) != len(theirs):
        raise DataError(f"has {len(theirs) - 1} rows but {inter_path.name} has {len(ours) - 1}; "
                        "it must be a row-aligned copy with original ids", where=str(folder / orig_name))
    head = header_names(inter_path, ours[0])
    k = head.index(cols["item"]) if cols["item"] in head else 1
    to_orig: dict[str, str] = {}
    for ln, (a, b) in enumerate(zip(ours[1:], theirs[1:]), start=2):
        if not a:
            continue
        mine, orig = a.split("\t")[k], b.split("\t")[k]
        if to_orig.setdefault(mine, orig) != orig:
            raise DataError(f"item {mine!r} maps to two original ids ({to_orig[mine]!r}, {orig!r})",
                            where=f"{folder / orig_name}:{ln}")
    fields = [cols["item"], *table.fields]
    rows = {mine: [mine, *table.rows[orig]] for mine, orig in to_orig.items() if orig in table.rows}
    return SideTable(fields, rows)


class MMRec(Format):
    """MMRec: ``.inter`` with integer ids and ``x_label``, row-aligned ``*.npy`` features, id mappings."""

    def read_interactions(self, card, folder: Path) -> Interactions:
        cols = _columns(card)
        inter = read_delimited(folder / card.files["interactions"], cols)
        _check_index_ids(inter, "user", cols["user"], contiguous=False)
        _check_index_ids(inter, "item", cols["item"], contiguous="item_mapping" not in card.files)
        for role in ("user", "item"):
            name = card.files.get(f"{role}_mapping")
            if name:
                _apply_mapping(inter, role, read_mapping(folder / name, cols[role]), folder / name)
        return inter

    def read_side(self, card, folder: Path, role: str) -> SideTable | None:
        if side_file(card, folder, role) is None:
            return None
        return _items(card, folder) if role == "items" else keyed_side(card, folder, role)

    def feature_row_count(self, card, inter: Interactions) -> int | None:
        """Without an item mapping, feature files have exactly one row per source item (ids 0..n-1)."""
        if "item_mapping" in card.files:
            return None
        return int(index_ids(inter.item, "item", inter.where).max()) + 1

    def feature_rows(self, card, folder: Path, raw_item_ids: list[str], where: str) -> np.ndarray:
        """``dataset.feature_rows = 'id-mapping'``: the item mapping file gives each raw id its row."""
        if card.meta.get("feature_rows") != "id-mapping":
            return super().feature_rows(card, folder, raw_item_ids, where)
        name = card.files.get("item_mapping")
        if not name:
            raise DataError("dataset.feature_rows = 'id-mapping' needs files.item_mapping", where=str(card.path))
        to_raw = read_mapping(folder / name, _columns(card)["item"])
        return rows_of(raw_item_ids, {raw: int(idx) for idx, raw in to_raw.items()}, where)

    def detect(self, folder: Path, name: str) -> Layout:
        files = find_inter(folder, name)
        first = folder / files["interactions"]
        header = header_names(first, read_lines(first)[0])
        require_columns(first, header, (COLUMNS["user"], COLUMNS["item"]),
                        "an MMRec .inter has userID, itemID, rating and x_label columns")
        columns = {r: c for r, c in COLUMNS.items() if c in header}
        for role, fname in MAPPINGS:
            if (folder / fname).is_file():
                files[role] = fname
        for role, fname in (("items", f"{name}.items.tsv"), ("users", f"{name}.users.tsv")):
            if (folder / fname).is_file():
                files[role] = fname
        return Layout(files, columns, "id-mapping" if "item_mapping" in files else "item-id")

    def write(self, ds, folder: Path, name: str) -> None:
        a = ds.arrays
        rows = [[str(u), str(i), r, t, str(int(lab))] for u, i, r, t, lab in
                zip(a["user"].tolist(), a["item"].tolist(), number_strings(a["rating"]),
                    number_strings(a["timestamp"]), a["label"])]
        atomic_write_text(folder / f"{name}.inter", tsv_text(["userID", "itemID", "rating", "timestamp", "x_label"],
                                                             rows))
        users, items = ds.user_raw_ids(), ds.item_raw_ids()
        atomic_write_text(folder / "u_id_mapping.csv", tsv_text(["user_id", "userID"],
                                                                [[u, str(j)] for j, u in enumerate(users)]))
        atomic_write_text(folder / "i_id_mapping.csv", tsv_text(["item_id", "itemID"],
                                                                [[x, str(j)] for j, x in enumerate(items)]))
        for role, fname in (("items", f"{name}.items.tsv"), ("users", f"{name}.users.tsv")):
            table = attribute_rows(ds, role)
            if table is not None:
                atomic_write_text(folder / fname, tsv_text(*table))
