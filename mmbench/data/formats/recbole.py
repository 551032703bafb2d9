"""RecBole atomic files (format ``recbole``).

Tab-separated, a header of ``name:type`` fields (``token``, ``float``, ``token_seq``,
``float_seq``), one row per line. ``files.interactions`` is one ``.inter`` file; a split shipped
as files (``files.train`` / ``files.valid`` / ``files.test``, RecBole's ``benchmark_filename``
layout) gives a preset split label (0/1/2 from the file). ``files.items`` / ``files.users`` are
``.item`` / ``.user`` files keyed by the card's item/user column.

Import reads ``<name>.inter``, or the split files ``<name>.train.inter`` / ``<name>.valid.inter``
/ ``<name>.test.inter`` (a preset split); ``<name>.item`` / ``<name>.user``; features in
``features/*.npy`` with rows in the order of ``<name>.item``. Export writes the split files, the
attribute tables with every field a ``token``, and the features there.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...io import atomic_write_text
from .base import Format, Interactions, Layout, SideTable, attribute_rows, number_strings, side_file, tsv_text
from .delimited import ATOMIC_TYPES, column_index, header_names, keyed_rows, read_lines, rows_to_interactions, \
    split_rows

SPLIT_FILES = ((0, "train"), (1, "valid"), (2, "test"))


def read_atomic_header(path: Path, first: str) -> list[tuple[str, str]]:
    fields = []
    for i, f in enumerate(first.split("\t")):
        name, sep, typ = f.partition(":")
        if not sep or typ not in ATOMIC_TYPES or not name:
            raise DataError(f"header field {i + 1} {f!r} is not 'name:type' with type in {ATOMIC_TYPES}",
                            where=f"{path}:1", hint="the first line of an atomic file must be its header")
        fields.append((name, typ))
    return fields


def _atomic(path: Path) -> tuple[list[tuple[str, str]], list[tuple[int, list[str]]]]:
    lines = read_lines(path)
    header = read_atomic_header(path, lines[0])
    return header, split_rows(path, lines[1:], len(header))


def read_table(path: str | Path) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Read an atomic file into its header and rows of strings (column count checked)."""
    header, rows = _atomic(Path(path))
    return header, [parts for _, parts in rows]


def read_atomic_interactions(path: str | Path, columns: dict) -> Interactions:
    """Read a RecBole ``.inter`` file; ``columns`` maps role (user/item/rating/timestamp) to header name."""
    path = Path(path)
    header, rows = _atomic(path)
    idx = column_index(path, [n for n, _ in header], columns)
    return rows_to_interactions(path, rows, idx, columns, strip=False)


def read_atomic_side(path: Path, key: str) -> SideTable:
    """A side file (``.item``/``.user``) keyed by column ``key``."""
    header, rows = _atomic(path)
    names = [n for n, _ in header]
    if key not in names:
        raise DataError(f"key column {key!r} missing from the header (have {names})", where=f"{path}:1")
    k = names.index(key)
    return SideTable(names, keyed_rows(path, rows, k, key), k)


def read_split_files(card, folder: Path) -> Interactions:
    """``files.train`` / ``files.valid`` / ``files.test`` as one set with the preset label of each file."""
    parts = []
    for label, role in SPLIT_FILES:
        name = card.files.get(role)
        if not name:
            continue
        inter = read_atomic_interactions(folder / name, card.columns)
        inter.label = np.full(len(inter), label, dtype=np.int8)
        parts.append(inter)
    if any(p.rating is None for p in parts) != all(p.rating is None for p in parts) or \
            any(p.timestamp is None for p in parts) != all(p.timestamp is None for p in parts):
        raise DataError("the split files do not have the same columns", where=str(folder / card.files["train"]))
    cat = lambda xs: None if xs[0] is None else np.concatenate(xs)  # noqa: E731
    # line numbers stay per file; ``part`` says which file each row came from (errors name it)
    return Interactions(np.concatenate([p.user for p in parts]), np.concatenate([p.item for p in parts]),
                        cat([p.rating for p in parts]), cat([p.timestamp for p in parts]),
                        np.concatenate([p.line for p in parts]), parts[0].source,
                        np.concatenate([p.label for p in parts]), tuple(p.source for p in parts),
                        np.concatenate([np.full(len(p), k, dtype=np.int8) for k, p in enumerate(parts)]))


def find_inter(folder: Path, name: str) -> dict[str, str]:
    """``{"interactions": file}``: ``<name>.inter``, else the folder's only ``.inter`` (split files aside)."""
    if (folder / f"{name}.inter").is_file():
        return {"interactions": f"{name}.inter"}
    found = sorted(p.name for p in folder.glob("*.inter") if not re.search(r"\.(train|valid|test)\.inter$", p.name))
    if len(found) == 1:
        return {"interactions": found[0]}
    if not found:
        raise DataError(f"no {name}.inter (or other .inter file) found", where=str(folder),
                        hint="point at the folder that holds the interaction file")
    raise DataError(f"several .inter files ({', '.join(found)}) and none is {name}.inter", where=str(folder),
                    hint="pass --name matching the file to import")


def require_columns(path: Path, header: list[str], wanted, hint: str) -> None:
    """Import: every column of ``wanted`` must be in ``header`` (read from ``path``)."""
    for col in wanted:
        if col not in header:
            raise DataError(f"column {col!r} missing from the header (have {header})", where=f"{path}:1", hint=hint)


class RecBole(Format):
    """RecBole atomic files: ``.inter`` (or train/valid/test split files), ``.item``, ``.user``."""

    feature_dir = "features/"

    def read_interactions(self, card, folder: Path) -> Interactions:
        if "interactions" in card.files:
            return read_atomic_interactions(folder / card.files["interactions"], card.columns)
        return read_split_files(card, folder)

    def read_side(self, card, folder: Path, role: str) -> SideTable | None:
        path = side_file(card, folder, role)
        return None if path is None else read_atomic_side(path, card.columns["item" if role == "items" else "user"])

    def detect(self, folder: Path, name: str) -> Layout:
        files = {role: f"{name}.{role}.inter" for role in ("train", "test", "valid")
                 if (folder / f"{name}.{role}.inter").is_file()}
        if not {"train", "test"} <= set(files):
            files = find_inter(folder, name)
        first = folder / next(iter(files.values()))
        header = header_names(first, read_lines(first)[0])
        require_columns(first, header, ("user_id", "item_id"),
                        "RecBole .inter files name their columns user_id:token and item_id:token")
        columns = {r: c for r, c in (("rating", "rating"), ("timestamp", "timestamp")) if c in header}
        if "x_label" in header and "interactions" in files:
            columns["label"] = "x_label"
        for role, fname in (("items", f"{name}.item"), ("users", f"{name}.user")):
            if (folder / fname).is_file():
                files[role] = fname
        return Layout(files, columns, "items-file")

    def write(self, ds, folder: Path, name: str) -> None:
        a = ds.arrays
        users, items = ds.user_raw_ids(), ds.item_raw_ids()
        rating, ts = number_strings(a["rating"]), number_strings(a["timestamp"])
        head = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
        for lab, part in SPLIT_FILES:
            keep = (a["label"] == lab).tolist()
            rows = [[users[u], items[i], r, t] for u, i, r, t, k in
                    zip(a["user"].tolist(), a["item"].tolist(), rating, ts, keep) if k]
            atomic_write_text(folder / f"{name}.{part}.inter", tsv_text(head, rows))
        for role, fname, key in (("items", f"{name}.item", "item_id"), ("users", f"{name}.user", "user_id")):
            table = attribute_rows(ds, role)
            if table is None and role == "items" and ds.features.keys():
                table = (["item_id"], [[x] for x in items])  # features align to the .item rows
            if table is not None:
                header = [f"{key}:token"] + [f"{h}:token" for h in table[0][1:]]
                atomic_write_text(folder / fname, tsv_text(header, table[1]))
