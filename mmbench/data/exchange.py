"""A researcher's own data in, a prepared dataset out: ``mmbench import`` / ``mmbench export``.

Both go through the format registry (:func:`mmbench.data.formats.get_format`): a format that
has ``detect`` can be imported, one that has ``write`` can be exported; the layouts are
described in the format modules.

Import asks the format which files of the folder hold the dataset, takes the item features
(``*.npy``) from the format's feature folder, writes a local card (``$MMBENCH_HOME/cards``)
that points at the folder and pins the sha256 of every file it uses, and prepares it; the card
is put in place only after preparation succeeded, so a bad file leaves nothing behind. A
feature file's key is guessed from its name: ``image_feat.npy`` -> ``image/image_feat``; a
name holding a modality word (text, image, audio, video) goes to that modality, else to
``meta``; ``<stem>.mask.npy`` (bool, one per row) marks missing rows. ``mmbench.json`` beside
the files (written by export) names the features exactly and carries the title, licence and
positive threshold.

Export has the format write the interactions and attribute tables of a prepared dataset, adds
the features and ``mmbench.json`` (all into ``<dir>.incomplete``, renamed at the end).
Exporting and importing again gives the same split fingerprint and the same feature
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
from ..io import atomic_write_bytes, atomic_write_text, read_json, sha256_file, write_json
from ..paths import local_cards_dir
from .formats import Layout, get_format

EXPORT_SCHEMA = "mmbench.export/1"
_MODALITIES = ("text", "image", "audio", "video")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ----------------------------------------------------------------------------- export
def _save_npy(path: Path, arr: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _write_features(ds, folder: Path) -> dict[str, dict]:
    """Every feature matrix of ``ds`` (and its mask, when rows are missing) into ``folder``; returns
    what ``mmbench.json`` says of them."""
    features = {}
    for key in ds.features.keys():
        f = ds.features.get(key)
        stem = key.replace("/", "__")
        folder.mkdir(exist_ok=True)
        _save_npy(folder / f"{stem}.npy", f.values)
        entry = {"file": f"{stem}.npy", "fingerprint": f.fingerprint}
        if not f.mask.all():
            _save_npy(folder / f"{stem}.mask.npy", f.mask)
            entry["mask"] = f"{stem}.mask.npy"
        features[key] = entry
    return features


def export_dataset(ds, fmt: str, out: str | os.PathLike, *, name: str | None = None, force: bool = False) -> Path:
    """Write prepared dataset ``ds`` to folder ``out`` in format ``fmt`` (any registered format that can write)."""
    writer = get_format(fmt, "write")
    out = Path(out)
    name = name or ds.name
    if out.exists() and not force:
        raise DataError("output folder already exists", where=str(out), hint="choose another --out or pass --force")
    tmp = out.with_name(out.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        writer.write(ds, tmp, name)
        features = _write_features(ds, tmp / writer.feature_dir)
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


def _feature_files(folder: Path, feature_dir: str, info: dict) -> dict[str, str]:
    """Feature key -> file (relative to ``folder``): as ``mmbench.json`` lists them, else every
    ``*.npy`` of ``feature_dir`` (masks aside) under a key guessed from its name."""
    listed = info.get("features", {})
    if listed:
        return {key: feature_dir + entry["file"] for key, entry in sorted(listed.items())}
    features: dict[str, str] = {}
    if (folder / feature_dir).is_dir():
        for p in sorted((folder / feature_dir).glob("*.npy")):
            if p.name.endswith(".mask.npy"):
                continue
            key = _guess_key(p.stem)
            if key in features:
                raise DataError(f"two feature files map to the key {key!r}", where=str(p),
                                hint="rename one, or list them in mmbench.json")
            features[key] = feature_dir + p.name
    return features


def _checksums(folder: Path, layout: Layout, features: dict[str, str]) -> dict[str, str]:
    """sha256 of every file the card will use: the layout's files, the features and their masks."""
    used = [*layout.files.values(), *features.values()]
    used += [f[:-4] + ".mask.npy" for f in features.values() if (folder / (f[:-4] + ".mask.npy")).is_file()]
    return {f: sha256_file(folder / f) for f in sorted(set(used))}


def _card_text(*, name: str, fmt: str, folder: Path, layout: Layout, features: dict, info: dict,
               positive_threshold: float | None) -> str:
    """The TOML of the imported dataset's card."""
    meta = info.get("dataset", {})
    dataset = {"name": name, "version": "1", "title": meta.get("title") or f"{name} (imported)",
               "license": meta.get("license") or "unknown: imported by the user; state its licence before sharing",
               "format": fmt, "modalities": meta.get("modalities") or
               ["interactions"] + sorted({k.split("/", 1)[0] for k in features}),
               "tags": ["imported"], "feature_rows": layout.feature_rows}
    if "label" in layout.columns or {"train", "test"} <= set(layout.files):
        split = {"method": "preset", "column": layout.columns.get("label", "file")}
    else:
        split = {"method": "random_ratio", "ratios": [0.8, 0.1, 0.1], "seed": 2020}
    threshold = positive_threshold if positive_threshold is not None else info.get("positive_threshold")
    filters = {"duplicates": "error", **({"min_rating": float(threshold)} if threshold is not None else {})}
    parts = [f"# Written by `mmbench import --format {fmt}`; the files stay in {folder}.\n", _table("dataset", dataset)]
    parts.append("[[sources]]\n" + f'name = "local"\npath = {json.dumps(str(folder))}\n')
    parts.append(_table("sources.checksums", _checksums(folder, layout, features)))
    parts.append(_table("files", layout.files))
    if layout.columns:
        parts.append(_table("columns", layout.columns))
    if features:
        parts.append(_table("features", features))
    parts.append(_table("filters", filters))
    parts.append(_table("split", split))
    return "\n".join(parts)


def import_dataset(fmt: str, folder: str | os.PathLike, name: str, *, positive_threshold: float | None = None,
                   force: bool = False):
    """Import ``folder`` (a layout of format ``fmt``, one that can detect) as dataset ``name``; returns the
    prepared dataset."""
    from .cards import load_card
    from .prepare import prepare

    detector = get_format(fmt, "detect")
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DataError("not a folder", where=str(folder))
    _check_name(name, force)
    info = read_json(folder / "mmbench.json") if (folder / "mmbench.json").is_file() else {}
    layout = detector.detect(folder, info.get("name", name))
    features = _feature_files(folder, detector.feature_dir, info)
    if features and layout.feature_rows == "items-file" and "items" not in layout.files:
        raise DataError("feature files need an items file to know which row is which item",
                        where=str(folder / detector.feature_dir), hint=f"format {fmt!r} aligns feature rows to it")
    text = _card_text(name=name, fmt=fmt, folder=folder, layout=layout, features=features, info=info,
                      positive_threshold=positive_threshold)
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
