"""A researcher's own data in, a prepared dataset out: ``mmbench import`` / ``mmbench export``.

Import reads a folder in MMRec or RecBole form, writes a local card (``$MMBENCH_HOME/cards``)
that points at the folder and pins the sha256 of every file it uses, and prepares it; the
card is put in place only after preparation succeeded, so a bad file leaves nothing behind.

* ``mmrec``: ``<name>.inter`` (``userID itemID rating [timestamp] [x_label]``, tab-separated,
  untyped header); ``x_label`` -> preset split, else a random 8:1:1 split per user (seed
  2020). Every other ``*.npy`` beside it is a row-aligned item feature (row i = itemID i):
  ``image_feat.npy`` -> ``image/image_feat``; a file whose name holds a modality word (text,
  image, audio, video) goes to that modality, else to ``meta``. ``<stem>.mask.npy`` (bool, one
  per row) marks missing rows. ``u_id_mapping.csv`` / ``i_id_mapping.csv`` (``raw<TAB>index``)
  restore raw ids, and ``<name>.items.tsv`` / ``<name>.users.tsv`` (header, key column first)
  carry attributes.
* ``recbole``: ``<name>.inter``, or the split files ``<name>.train.inter`` /
  ``<name>.valid.inter`` / ``<name>.test.inter`` (RecBole's ``benchmark_filename`` layout,
  read as a preset split); ``<name>.item`` / ``<name>.user``; features in ``features/*.npy``
  with rows in the order of ``<name>.item``.
* ``mmbench.json`` beside the files (written by export) names the features exactly and carries
  the title, licence and positive threshold.

Export writes the same layouts from a prepared dataset (into ``<dir>.incomplete``, renamed at
the end). Exporting and importing again gives the same split fingerprint and the same feature
fingerprints: the round trip is lossless.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, RegistryError
from ..io import atomic_write_text, read_json, sha256_file, write_json
from ..paths import local_cards_dir

EXPORT_SCHEMA = "mmbench.export/1"
FORMATS = ("mmrec", "recbole")
_MODALITIES = ("text", "image", "audio", "video")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ----------------------------------------------------------------------------- export
def _num(values: np.ndarray) -> list[str]:
    if np.issubdtype(values.dtype, np.integer):
        return [str(int(v)) for v in values]
    return [repr(float(v)) for v in values]


def _attribute_rows(ds, role: str) -> tuple[list[str], list[list[str]]] | None:
    """Attribute table of items/users with the id column first (found by matching the raw ids)."""
    p = ds.path / ("item_attributes.tsv" if role == "items" else "user_attributes.tsv")
    if not p.is_file():
        return None
    lines = p.read_text(encoding="utf-8").split("\n")[:-1]
    header = lines[0].split("\t")[1:]
    rows = [ln.split("\t")[1:] for ln in lines[1:]]
    raw = ds.item_raw_ids() if role == "items" else ds.user_raw_ids()
    key = next((j for j in range(len(header)) if all(r[j] == raw[i] for i, r in enumerate(rows))), None)
    if key is None:  # no column holds the ids: add one
        return ["raw_id", *header], [[raw[i], *r] for i, r in enumerate(rows)]
    order = [key] + [j for j in range(len(header)) if j != key]
    return [header[j] for j in order], [[r[j] for j in order] for r in rows]


def _tsv(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join("\t".join(r) for r in [header, *rows]) + "\n"


def _save_npy(path: Path, arr: np.ndarray) -> None:
    from ..io import atomic_write_bytes
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def export_dataset(ds, fmt: str, out: str | os.PathLike, *, name: str | None = None, force: bool = False) -> Path:
    """Write prepared dataset ``ds`` to folder ``out`` in ``fmt`` (mmrec | recbole)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    out = Path(out)
    name = name or ds.name
    if out.exists() and not force:
        raise DataError("output folder already exists", where=str(out), hint="choose another --out or pass --force")
    tmp = out.with_name(out.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        a = ds.arrays
        users, items = ds.user_raw_ids(), ds.item_raw_ids()
        rating, ts, label = _num(a["rating"]), _num(a["timestamp"]), [str(int(v)) for v in a["label"]]
        feat_dir = tmp if fmt == "mmrec" else tmp / "features"
        if fmt == "mmrec":
            rows = [[str(u), str(i), r, t, lab] for u, i, r, t, lab in
                    zip(a["user"].tolist(), a["item"].tolist(), rating, ts, label)]
            atomic_write_text(tmp / f"{name}.inter", _tsv(["userID", "itemID", "rating", "timestamp", "x_label"], rows))
            atomic_write_text(tmp / "u_id_mapping.csv", _tsv(["user_id", "userID"], [[u, str(j)] for j, u in enumerate(users)]))
            atomic_write_text(tmp / "i_id_mapping.csv", _tsv(["item_id", "itemID"], [[x, str(j)] for j, x in enumerate(items)]))
            for role, fname in (("items", f"{name}.items.tsv"), ("users", f"{name}.users.tsv")):
                table = _attribute_rows(ds, role)
                if table is not None:
                    atomic_write_text(tmp / fname, _tsv(*table))
        else:
            head = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
            for lab, part in ((0, "train"), (1, "valid"), (2, "test")):
                m = a["label"] == lab
                rows = [[users[u], items[i], r, t] for u, i, r, t, keep in
                        zip(a["user"].tolist(), a["item"].tolist(), rating, ts, m.tolist()) if keep]
                atomic_write_text(tmp / f"{name}.{part}.inter", _tsv(head, rows))
            for role, fname, key in (("items", f"{name}.item", "item_id"), ("users", f"{name}.user", "user_id")):
                table = _attribute_rows(ds, role)
                if table is None and role == "items" and ds.features.keys():
                    table = (["item_id"], [[x] for x in items])  # features align to the .item rows
                if table is not None:
                    header = [f"{key}:token"] + [f"{h}:token" for h in table[0][1:]]
                    atomic_write_text(tmp / fname, _tsv(header, table[1]))
        features = {}
        for key in ds.features.keys():
            f = ds.features.get(key)
            stem = key.replace("/", "__")
            feat_dir.mkdir(exist_ok=True)
            _save_npy(feat_dir / f"{stem}.npy", f.values)
            entry = {"file": f"{stem}.npy", "fingerprint": f.fingerprint}
            if not f.mask.all():
                _save_npy(feat_dir / f"{stem}.mask.npy", f.mask)
                entry["mask"] = f"{stem}.mask.npy"
            features[key] = entry
        m = ds.manifest
        write_json(tmp / "mmbench.json", {
            "schema": EXPORT_SCHEMA, "format": fmt, "name": name, "dataset": m["dataset"],
            "fingerprint": m["fingerprint"], "filters": m["filters"], "split": m["split"],
            "stats": {k: m["stats"][k] for k in ("users", "items", "interactions")}, "features": features,
            "positive_threshold": m["filters"].get("min_rating"),
        })
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------- import
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def _table(name: str, d: dict) -> str:
    lines = [f"[{name}]"] + [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in d.items()]
    return "\n".join(lines) + "\n"


def _guess_key(stem: str) -> str:
    low = stem.lower()
    modality = next((m for m in _MODALITIES if m in low), "meta")
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", stem).strip("-") or "feature"
    if not name[0].isalnum():
        name = "f" + name
    return f"{modality}/{name}"


def _pick_inter(folder: Path, name: str, fmt: str) -> dict:
    """Role -> file name of the interaction file(s)."""
    if fmt == "recbole" and (folder / f"{name}.train.inter").is_file() and (folder / f"{name}.test.inter").is_file():
        roles = {"train": f"{name}.train.inter", "test": f"{name}.test.inter"}
        if (folder / f"{name}.valid.inter").is_file():
            roles["valid"] = f"{name}.valid.inter"
        return roles
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


def _header(path: Path) -> list[str]:
    from .formats_extra import _header_names, read_lines

    return _header_names(path, read_lines(path)[0], "\t")


def _check_name(name: str, force: bool) -> None:
    if not _NAME.match(name):
        raise ConfigError(f"dataset name {name!r} must be letters, digits, '.', '_' or '-'")
    from .cards import find_card

    try:
        existing = find_card(name)
    except RegistryError:
        return
    local = Path(existing.path).resolve().parent == local_cards_dir().resolve()
    if not local:
        raise DataError(f"a dataset named {name!r} already exists ({existing.path})", hint="choose another --name")
    if not force:
        raise DataError(f"a dataset named {name!r} was already imported ({existing.path})",
                        hint="pass --force to replace it, or choose another --name")


def _card_text(*, name: str, fmt: str, folder: Path, roles: dict, columns: dict, features: dict, split: dict,
               filters: dict, meta: dict, checksums: dict, feature_rows: str) -> str:
    dataset = {"name": name, "version": "1", "title": meta.get("title") or f"{name} (imported)",
               "license": meta.get("license") or "unknown: imported by the user; state its licence before sharing",
               "format": fmt, "modalities": meta.get("modalities") or
               ["interactions"] + sorted({k.split("/", 1)[0] for k in features}),
               "tags": ["imported"], "feature_rows": feature_rows}
    parts = [f"# Written by `mmbench import --format {fmt}`; the files stay in {folder}.\n", _table("dataset", dataset)]
    parts.append("[[sources]]\n" + f'name = "local"\npath = {json.dumps(str(folder))}\n')
    parts.append(_table("sources.checksums", checksums))
    parts.append(_table("files", roles))
    if columns:
        parts.append(_table("columns", columns))
    if features:
        parts.append(_table("features", features))
    parts.append(_table("filters", filters))
    parts.append(_table("split", split))
    return "\n".join(parts)


def import_dataset(fmt: str, folder: str | os.PathLike, name: str, *, positive_threshold: float | None = None,
                   force: bool = False):
    """Import ``folder`` (mmrec | recbole) as dataset ``name``; returns the prepared dataset."""
    from .cards import load_card
    from .prepare import prepare

    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DataError("not a folder", where=str(folder))
    _check_name(name, force)
    info = read_json(folder / "mmbench.json") if (folder / "mmbench.json").is_file() else {}
    file_name = info.get("name", name)
    roles = _pick_inter(folder, file_name, fmt)
    first = folder / next(iter(roles.values()))
    header = _header(first)
    columns: dict[str, str] = {}
    feature_rows = "item-id"
    if fmt == "mmrec":
        want = {"user": "userID", "item": "itemID", "rating": "rating", "timestamp": "timestamp", "label": "x_label"}
        for role in ("user", "item"):
            if want[role] not in header:
                raise DataError(f"column {want[role]!r} missing from the header (have {header})", where=f"{first}:1",
                                hint="an MMRec .inter has userID, itemID, rating and x_label columns")
        columns = {r: c for r, c in want.items() if c in header}
        for role, fname in (("user_mapping", "u_id_mapping.csv"), ("item_mapping", "i_id_mapping.csv")):
            if (folder / fname).is_file():
                roles[role] = fname
        if "item_mapping" in roles:
            feature_rows = "id-mapping"
        for role, fname in (("items", f"{file_name}.items.tsv"), ("users", f"{file_name}.users.tsv")):
            if (folder / fname).is_file():
                roles[role] = fname
        feat_dir, rel = folder, ""
    else:
        for col in ("user_id", "item_id"):
            if col not in header:
                raise DataError(f"column {col!r} missing from the header (have {header})", where=f"{first}:1",
                                hint="RecBole .inter files name their columns user_id:token and item_id:token")
        columns = {r: c for r, c in (("rating", "rating"), ("timestamp", "timestamp")) if c in header}
        if "x_label" in header and "interactions" in roles:
            columns["label"] = "x_label"
        for role, fname in (("items", f"{file_name}.item"), ("users", f"{file_name}.user")):
            if (folder / fname).is_file():
                roles[role] = fname
        feat_dir, rel = folder / "features", "features/"
        feature_rows = "items-file"
    features = {}
    listed = info.get("features", {})
    for key, entry in sorted(listed.items()):
        features[key] = rel + entry["file"]
    if not listed and feat_dir.is_dir():
        for p in sorted(feat_dir.glob("*.npy")):
            if p.name.endswith(".mask.npy"):
                continue
            key = _guess_key(p.stem)
            if key in features:
                raise DataError(f"two feature files map to the key {key!r}", where=str(p),
                                hint="rename one, or list them in mmbench.json")
            features[key] = rel + p.name
    if features and fmt == "recbole" and "items" not in roles:
        raise DataError(f"feature files need {file_name}.item to know which row is which item", where=str(feat_dir))
    if "label" in columns or {"train", "test"} <= set(roles):
        split = {"method": "preset", "column": columns.get("label", "file")}
    else:
        split = {"method": "random_ratio", "ratios": [0.8, 0.1, 0.1], "seed": 2020}
    threshold = positive_threshold if positive_threshold is not None else info.get("positive_threshold")
    filters = {"duplicates": "error"}
    if threshold is not None:
        filters["min_rating"] = float(threshold)
    used = [*roles.values(), *features.values()]
    used += [f[:-4] + ".mask.npy" for f in features.values() if (folder / (f[:-4] + ".mask.npy")).is_file()]
    checksums = {f: sha256_file(folder / f) for f in sorted(set(used))}
    meta = dict(info.get("dataset", {}))
    text = _card_text(name=name, fmt=fmt, folder=folder, roles=roles, columns=columns, features=features,
                      split=split, filters=filters, meta=meta, checksums=checksums, feature_rows=feature_rows)
    cards = local_cards_dir()
    cards.mkdir(parents=True, exist_ok=True)
    final = cards / f"{name}.toml"
    staged = cards / f".{name}.toml.incomplete"
    atomic_write_text(staged, text)
    try:
        ds = prepare(load_card(staged), force=True)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, final)
    return ds
