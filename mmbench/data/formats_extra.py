"""Readers for interaction and side files beyond RecBole's single atomic ``.inter``.

Formats (the card's ``dataset.format``, or a source's ``format``):

``recbole``
    RecBole atomic files; typed header ``name:type``. A split shipped as files
    (``files.train`` / ``files.valid`` / ``files.test``, RecBole's ``benchmark_filename``
    layout) gives a preset split label (0/1/2 from the file). Single-file ``.inter`` is read by
    :func:`mmbench.data.formats.read_atomic_interactions`.
``mmrec``
    MMRec: a tab-separated ``.inter`` with an untyped header (``userID itemID rating
    [timestamp] x_label``); ids are 0-based contiguous integers, ``x_label`` is the split
    (0/1/2), and feature files are row-aligned to ``itemID``. Typed headers are accepted too.
    Optional ``files.user_mapping`` / ``files.item_mapping`` (MMRec's ``u_id_mapping.csv`` /
    ``i_id_mapping.csv``: raw id <TAB> index, with a header) restore the raw ids.
    ``files.items`` is a TSV with a header keyed by its first column; with
    ``files.original_ids`` (a row-aligned copy of the ``.inter`` with original ids, as the
    lfm2k resource ships) the items file is keyed by the original item id.
``movielens-raw``
    GroupLens MovieLens files: ``u.data`` (tab) / ``ratings.dat`` (``::``), ``u.item`` (``|``)
    / ``movies.dat``, ``u.user`` / ``users.dat``; Latin-1 text. Items get the fields
    ``item_id movie_title release_year class`` (genres space-separated, like RecBole's files).
``hetrec-lastfm``
    HetRec 2011 Last.fm: ``user_artists.dat`` (``userID artistID weight``). The listening count
    ``weight`` is kept as the rating; every row is an implicit positive unless the card sets
    ``filters.min_rating`` (a play-count threshold). Items: ``artists.dat`` plus a ``tags``
    field -- the artist's distinct tags (``user_taggedartists.dat`` joined with ``tags.dat``),
    sorted and comma-separated; empty when the tag-assignment file is absent.
``microlens``
    MicroLens: ``MicroLens-100k_pairs.csv`` (``user,item,timestamp`` with a header) and
    ``MicroLens-100k_title_en.csv`` (``item,title`` without a header).

Errors name the file, the line and the field.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .formats import ATOMIC_TYPES, Interactions, columns_to_interactions, read_atomic_interactions, read_atomic_side

FORMATS = ("recbole", "mmrec", "movielens-raw", "hetrec-lastfm", "microlens")
ML_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
             "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
             "War", "Western")


@dataclass
class SideTable:
    """Attributes of items or users: field names and ``raw id -> row`` (strings); ``key`` is the id field."""

    fields: list[str]
    rows: dict[str, list[str]]
    key: int = 0


# ----------------------------------------------------------------------------- text files
def read_lines(path: Path, encodings: tuple[str, ...] = ("utf-8",)) -> list[str]:
    """Lines of a text file without line ends; the first encoding that decodes wins."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", where=str(path), hint="check the card's files and its source") from None
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", where=str(path)) from None
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
        raise DataError(f"not {encodings[0]} text (byte {err.start})", where=f"{path}:{line}",
                        hint="re-encode the file as UTF-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _splitter(sep: str):
    if sep == ",":
        return lambda line: next(csv.reader([line]))
    return lambda line: line.split(sep)


def _header_names(path: Path, first: str, sep: str) -> list[str]:
    names = []
    for i, f in enumerate(_splitter(sep)(first)):
        name, colon, typ = f.strip().partition(":")
        if colon and typ not in ATOMIC_TYPES:
            name = f.strip()  # a colon that is not a RecBole type suffix is part of the name
        if not name:
            raise DataError(f"header field {i + 1} is empty", where=f"{path}:1",
                            hint="the first line must name the columns")
        names.append(name)
    return names


def read_delimited(path: Path, columns: dict, *, sep: str = "\t", names: list[str] | None = None,
                   encodings: tuple[str, ...] = ("utf-8",)) -> Interactions:
    """Interactions from a delimited file. ``names`` given: the file has no header line.

    ``columns`` maps role (user/item/rating/timestamp/label) to a column name; user and item are
    required, the others are read when the column exists.
    """
    lines = read_lines(path, encodings)
    split = _splitter(sep)
    if names is None:
        names = _header_names(path, lines[0], sep)
        start = 2
        body_lines = lines[1:]
    else:
        start = 1
        body_lines = lines
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
    n = len(names)
    cols: dict[str, list[str]] = {r: [] for r in idx}
    line_no = []
    for ln, line in enumerate(body_lines, start=start):
        if not line.strip():
            continue
        try:
            parts = split(line)
        except csv.Error as e:
            raise DataError(f"malformed CSV row ({e})", where=f"{path}:{ln}") from None
        if len(parts) != n:
            raise DataError(f"expected {n} fields, found {len(parts)}", where=f"{path}:{ln}",
                            hint=f"fields are separated by {sep!r}; check for a stray separator or a cut line")
        line_no.append(ln)
        for r, k in idx.items():
            cols[r].append(parts[k].strip())
    if not line_no:
        raise DataError("file has a header but no interactions", where=str(path))
    return columns_to_interactions(path, cols, np.asarray(line_no, dtype=np.int64), columns)


# ----------------------------------------------------------------------------- MMRec
def _check_index_ids(inter: Interactions, role: str, field: str, contiguous: bool) -> None:
    """MMRec ids are non-negative integers (items: exactly 0..n-1, feature row i = item i)."""
    raw = inter.user if role == "user" else inter.item
    bad = np.flatnonzero(~np.char.isdigit(raw.astype(str)))
    if len(bad):
        j = int(bad[0])
        raise DataError(f"field {field!r}: id {str(raw[j])!r} is not a non-negative integer", where=f"{inter.source}:"
                        f"{inter.line[j]}", hint="MMRec files use 0-based integer ids; use format 'recbole' for tokens")
    if not contiguous:
        return
    ids = np.unique(raw.astype(np.int64))
    if len(ids) and (ids[0] != 0 or ids[-1] != len(ids) - 1):
        present = np.zeros(int(ids[-1]) + 1, dtype=bool)
        present[ids] = True
        gap = int(np.argmin(present))
        raise DataError(f"field {field!r}: ids are not contiguous 0..{int(ids[-1])}: id {gap} never occurs "
                        f"({len(ids)} distinct ids)", where=inter.source,
                        hint="MMRec needs 0-based contiguous item ids (row i of each feature file is item i); "
                             "re-index the items or import as recbole")


def _read_mapping(path: Path, index_col: str) -> dict[str, str]:
    """MMRec id mapping (``raw<TAB>index`` with a header) -> ``index -> raw``."""
    lines = read_lines(path)
    sep = "\t" if "\t" in lines[0] else ","
    names = _header_names(path, lines[0], sep)
    if len(names) != 2 or index_col not in names:
        raise DataError(f"expected two columns, one named {index_col!r} (have {names})", where=f"{path}:1")
    k = names.index(index_col)
    out: dict[str, str] = {}
    split = _splitter(sep)
    for ln, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        parts = split(line)
        if len(parts) != 2:
            raise DataError(f"expected 2 fields, found {len(parts)}", where=f"{path}:{ln}")
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


def read_mmrec(card, folder: Path) -> Interactions:
    cols = {"user": "userID", "item": "itemID", "rating": "rating", "timestamp": "timestamp", "label": "x_label"}
    cols.update(card.data.get("columns", {}))
    inter = read_delimited(folder / card.files["interactions"], cols)
    _check_index_ids(inter, "user", cols["user"], contiguous=False)
    _check_index_ids(inter, "item", cols["item"], contiguous="item_mapping" not in card.files)
    for role in ("user", "item"):
        name = card.files.get(f"{role}_mapping")
        if name:
            _apply_mapping(inter, role, _read_mapping(folder / name, cols[role]), folder / name)
    return inter


# ----------------------------------------------------------------------------- RecBole split files
def read_recbole_split_files(card, folder: Path) -> Interactions:
    parts = []
    for label, role in ((0, "train"), (1, "valid"), (2, "test")):
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
    # line numbers stay per file; the source names the first file (errors say which file)
    return Interactions(np.concatenate([p.user for p in parts]), np.concatenate([p.item for p in parts]),
                        cat([p.rating for p in parts]), cat([p.timestamp for p in parts]),
                        np.concatenate([p.line for p in parts]), parts[0].source,
                        np.concatenate([p.label for p in parts]))


# ----------------------------------------------------------------------------- MovieLens raw
_ML_COLS = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
_LATIN = ("utf-8", "latin-1")
_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def _ml_sep(path: Path) -> str:
    """``::`` (ml-1m, ml-10m) or tab (ml-100k), from the first line."""
    with open(path, "rb") as f:
        return "::" if b"::" in f.readline() else "\t"


def read_movielens(card, folder: Path) -> Interactions:
    path = folder / card.files["interactions"]
    if not path.is_file():
        raise DataError("file not found", where=str(path), hint="check the card's files and its source")
    return read_delimited(path, _ML_COLS, sep=_ml_sep(path),
                          names=["user_id", "item_id", "rating", "timestamp"], encodings=_LATIN)


def _split_title(title: str, date: str = "") -> tuple[str, str]:
    m = _YEAR.match(title)
    year = date[-4:] if len(date) >= 4 and date[-4:].isdigit() else ""
    if m:
        return m.group(1), year or m.group(2)
    return title.strip(), year


def _ml_items(path: Path, folder: Path) -> SideTable:
    rows: dict[str, list[str]] = {}
    lines = read_lines(path, _LATIN)
    if lines and "::" in lines[0]:  # ml-1m: MovieID::Title (Year)::Genre|Genre
        for ln, line in enumerate(lines, start=1):
            if not line:
                continue
            parts = line.split("::")
            if len(parts) != 3:
                raise DataError(f"expected 3 fields separated by '::', found {len(parts)}", where=f"{path}:{ln}")
            title, year = _split_title(parts[1])
            rows[parts[0]] = [parts[0], title, year, " ".join(g for g in parts[2].split("|") if g)]
    else:  # ml-100k: id|title|release date|video release date|IMDb URL|19 genre flags
        genres = list(ML_GENRES)
        if (folder / "u.genre").is_file():
            pairs = [ln.split("|") for ln in read_lines(folder / "u.genre", _LATIN) if ln.strip()]
            genres = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
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
    return SideTable(["item_id", "movie_title", "release_year", "class"], rows)


def _ml_users(path: Path) -> SideTable:
    rows: dict[str, list[str]] = {}
    lines = read_lines(path, _LATIN)
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


# ----------------------------------------------------------------------------- HetRec Last.fm
_LASTFM_COLS = {"user": "userID", "item": "artistID", "rating": "weight"}


def read_hetrec_lastfm(card, folder: Path) -> Interactions:
    cols = {**_LASTFM_COLS, **card.data.get("columns", {})}
    return read_delimited(folder / card.files["interactions"], cols, encodings=_LATIN)


def _tsv_table(path: Path, encodings=_LATIN) -> tuple[list[str], list[tuple[int, list[str]]]]:
    lines = read_lines(path, encodings)
    names = _header_names(path, lines[0], "\t")
    rows = []
    for ln, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != len(names):
            raise DataError(f"expected {len(names)} fields, found {len(parts)}", where=f"{path}:{ln}",
                            hint="fields are tab-separated")
        rows.append((ln, parts))
    return names, rows


def _lastfm_items(card, folder: Path) -> SideTable:
    names, rows = _tsv_table(folder / card.files["items"])
    tags: dict[str, set[str]] = {}
    tag_file, tagged_file = card.files.get("tags"), card.files.get("tagged")
    if tag_file and tagged_file and (folder / tag_file).is_file() and (folder / tagged_file).is_file():
        _, tag_rows = _tsv_table(folder / tag_file)
        tag_name = {r[0]: r[1].strip() for _, r in tag_rows}
        tnames, trows = _tsv_table(folder / tagged_file)
        for want in ("artistID", "tagID"):
            if want not in tnames:
                raise DataError(f"column {want!r} missing from the header (have {tnames})",
                                where=f"{folder / tagged_file}:1")
        a, t = tnames.index("artistID"), tnames.index("tagID")
        for ln, r in trows:
            if r[t] not in tag_name:
                raise DataError(f"field 'tagID': tag {r[t]!r} is not in {tag_file}", where=f"{folder / tagged_file}:{ln}")
            tags.setdefault(r[a], set()).add(tag_name[r[t]])
    out: dict[str, list[str]] = {}
    for ln, r in rows:
        if r[0] in out:
            raise DataError(f"duplicate id {r[0]!r} in column {names[0]!r}", where=f"{folder / card.files['items']}:{ln}")
        out[r[0]] = [*r, ", ".join(sorted(tags.get(r[0], ())))]
    return SideTable([*names, "tags"], out)


# ----------------------------------------------------------------------------- MicroLens
_MICROLENS_COLS = {"user": "user", "item": "item", "timestamp": "timestamp"}


def read_microlens(card, folder: Path) -> Interactions:
    cols = {**_MICROLENS_COLS, **card.data.get("columns", {})}
    return read_delimited(folder / card.files["interactions"], cols, sep=",")


def _microlens_items(path: Path) -> SideTable:
    text = "\n".join(read_lines(path))
    out: dict[str, list[str]] = {}
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        ln = reader.line_num
        if not row:
            continue
        if len(row) != 2:
            raise DataError(f"expected 2 fields (item,title), found {len(row)}", where=f"{path}:{ln}")
        out[row[0].strip()] = [row[0].strip(), row[1]]
    return SideTable(["item", "title"], out)


# ----------------------------------------------------------------------------- generic side files
def _keyed_tsv(path: Path, key: str | None) -> SideTable:
    names, rows = _tsv_table(path, ("utf-8", "latin-1"))
    k = names.index(key) if key in names else 0
    out: dict[str, list[str]] = {}
    for ln, r in rows:
        if r[k] in out:
            raise DataError(f"duplicate id {r[k]!r} in column {names[k]!r}", where=f"{path}:{ln}")
        out[r[k]] = r
    return SideTable(names, out, k)


def _mmrec_items(card, folder: Path) -> SideTable:
    cols = {"item": "itemID", **card.data.get("columns", {})}
    table = _keyed_tsv(folder / card.files["items"], cols["item"])
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
    head = _header_names(inter_path, ours[0], "\t")
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


def read_interactions(fmt: str, card, folder: Path) -> Interactions:
    """Interactions of ``card`` (already seen through its source) from ``folder``."""
    if fmt == "recbole":
        if "interactions" in card.files:
            return read_atomic_interactions(folder / card.files["interactions"], card.columns)
        return read_recbole_split_files(card, folder)
    readers = {"mmrec": read_mmrec, "movielens-raw": read_movielens, "hetrec-lastfm": read_hetrec_lastfm,
               "microlens": read_microlens}
    if fmt not in readers:
        raise DataError(f"unknown dataset format {fmt!r}", where=str(card.path),
                        hint=f"use one of {', '.join(FORMATS)}")
    return readers[fmt](card, folder)


def read_side(fmt: str, card, folder: Path, role: str) -> SideTable | None:
    """Item (``role="items"``) or user (``"users"``) attributes, or None when the source has none."""
    name = card.files.get(role)
    if not name or not (folder / name).is_file():
        return None
    path = folder / name
    if fmt == "movielens-raw":
        return _ml_items(path, folder) if role == "items" else _ml_users(path)
    if fmt == "hetrec-lastfm" and role == "items":
        return _lastfm_items(card, folder)
    if fmt == "microlens" and role == "items":
        return _microlens_items(path)
    if fmt == "mmrec" and role == "items":
        return _mmrec_items(card, folder)
    if fmt == "recbole":
        key = card.columns["item" if role == "items" else "user"]
        fields, rows = read_atomic_side(path, key)
        return SideTable(fields, rows, fields.index(key))
    return _keyed_tsv(path, card.columns.get("item" if role == "items" else "user"))


def feature_rows(card, folder: Path, raw_item_ids: list[str], where: str) -> np.ndarray:
    """Row of each item (in our item order) in the card's row-aligned feature files."""
    how = card.meta.get("feature_rows", "item-id")
    if how == "item-id":
        try:
            return np.asarray([int(r) for r in raw_item_ids], dtype=np.int64)
        except ValueError:
            raise DataError("row-aligned features need integer item ids", where=where,
                            hint="set dataset.feature_rows = 'items-file' (rows follow files.items)") from None
    if how == "id-mapping":
        name = card.files.get("item_mapping")
        if not name:
            raise DataError("dataset.feature_rows = 'id-mapping' needs files.item_mapping", where=str(card.path))
        col = card.data.get("columns", {}).get("item", "itemID")
        to_raw = _read_mapping(folder / name, col)
        lookup = {raw: int(idx) for idx, raw in to_raw.items()}
    else:  # items-file
        side = read_side(card.format, card, folder, "items")
        if side is None:
            raise DataError("dataset.feature_rows = 'items-file' needs files.items", where=str(card.path))
        lookup = {rid: i for i, rid in enumerate(side.rows)}
    missing = [r for r in raw_item_ids if r not in lookup]
    if missing:
        raise DataError(f"item {missing[0]!r} has no row in the feature files ({len(missing)} items missing)",
                        where=where)
    return np.asarray([lookup[r] for r in raw_item_ids], dtype=np.int64)
