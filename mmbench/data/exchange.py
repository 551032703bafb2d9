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
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, MMBenchError, RegistryError
from ..io import atomic_write_bytes, atomic_write_text, check_owned, mark_owned, read_json, remove_owned, \
    sha256_file, storage, write_json
from ..names import check_feature_key, check_name, inside
from ..paths import local_cards_dir, locks_dir
from ..schema import ListOf, Table, validate
from .formats import Layout, get_format

EXPORT_SCHEMA = "mmbench.export/1"
_MODALITIES = ("text", "image", "audio", "video")


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
    """Write prepared dataset ``ds`` to folder ``out`` in format ``fmt`` (any registered format that can write).

    Built in a fresh hidden folder beside ``out`` and renamed at the end; the result carries a
    marker (:func:`mmbench.io.mark_owned`). ``force`` replaces an existing ``out`` only if that
    marker proves mmbench wrote all of it: nothing else is ever deleted.
    """
    writer = get_format(fmt, "write")
    out = Path(out).expanduser().resolve()
    name = check_name(name or ds.name, "export name")
    if out.exists() or out.is_symlink():
        if not force:
            raise DataError("output folder already exists", where=str(out), hint="choose another --out or pass --force")
        check_owned(out, "output folder")  # refuse before writing anything
    with storage(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:100]}.", suffix=".incomplete", dir=out.parent))
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
        mark_owned(tmp)
        if out.exists() or out.is_symlink():
            remove_owned(out, "output folder")
        with storage(out):
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    """``<modality>/<name>`` for a feature file's stem: the modality word in it (else ``meta``), the
    stem made a valid name."""
    low = stem.lower()
    modality = next((m for m in _MODALITIES if m in low), "meta")
    name = re.sub(r"\.\.+", ".", re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)).strip("-._")[:100] or "feature"
    return check_feature_key(f"{modality}/{name}")


def _check_existing(name: str, force: bool) -> None:
    """A card named ``name`` may be replaced only if ``mmbench import`` wrote it and ``force`` says so."""
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


FEATURE_ENTRY = {"file": (str, True), "fingerprint": (str, False), "mask": (str, False)}
INFO_SPEC = {  # mmbench.json, as export writes it
    "schema": (str, False), "format": (str, False), "name": (str, False), "fingerprint": (str, False),
    "dataset": Table({"name": (str, False), "version": (str, False), "title": (str, False),
                      "license": (str, False), "modalities": (ListOf(str), False)}),
    "filters": Table({}, open=True), "split": Table({}, open=True), "stats": Table({}, open=True),
    "features": Table({}, open=True), "positive_threshold": ((float, type(None)), False),
}


def read_info(folder: Path, feature_dir: str) -> dict:
    """``mmbench.json`` of ``folder`` (empty when absent), checked: known keys and types, a valid name,
    valid feature keys, and feature files inside ``feature_dir``."""
    path = folder / "mmbench.json"
    if not (path.exists() or path.is_symlink()):
        return {}
    info = read_json(path)
    validate(info, INFO_SPEC, where=str(path))
    if "name" in info:
        check_name(info["name"], "name", str(path))
    for key, entry in info.get("features", {}).items():
        check_feature_key(key, str(path))
        validate(entry, FEATURE_ENTRY, where=str(path), path=f"features.{key}")
        inside(folder / feature_dir, entry["file"], f"features.{key}.file", str(path))
    return info


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
    used += [f[:-4] + ".mask.npy" for f in features.values() if (folder / (f[:-4] + ".mask.npy")).exists()]
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
    parts = [f"# Written by `mmbench import --format {fmt}`; the files stay in {json.dumps(str(folder))}.\n",
             _table("dataset", dataset)]
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
    prepared dataset. One import of a name at a time (a lock per name): two processes importing the
    same name never mix their cards, folders or prepared data."""
    from filelock import FileLock

    detector = get_format(fmt, "detect")
    check_name(name, "dataset name (--name)")
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DataError("not a folder", where=str(folder))
    cards, locks = local_cards_dir(), locks_dir()
    with storage(cards):
        cards.mkdir(parents=True, exist_ok=True)
        locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"import-{name}.lock")):
        _check_existing(name, force)
        return _import_locked(detector, fmt, folder, name, cards, positive_threshold)


def _import_locked(detector, fmt: str, folder: Path, name: str, cards: Path, positive_threshold: float | None):
    """The import itself (the caller holds the name's lock): card staged, prepared, then put in place."""
    from .cards import load_card
    from .prepare import prepare

    info = read_info(folder, detector.feature_dir)
    layout = detector.detect(folder, info.get("name", name))
    features = _feature_files(folder, detector.feature_dir, info)
    if features and layout.feature_rows == "items-file" and "items" not in layout.files:
        raise DataError("feature files need an items file to know which row is which item",
                        where=str(folder / detector.feature_dir), hint=f"format {fmt!r} aligns feature rows to it")
    text = _card_text(name=name, fmt=fmt, folder=folder, layout=layout, features=features, info=info,
                      positive_threshold=positive_threshold)
    staged = cards / f".{name}.toml.incomplete"
    atomic_write_text(staged, text)
    try:
        ds = prepare(load_card(staged), force=True)
        with storage(staged):
            os.replace(staged, cards / f"{name}.toml")
    except MMBenchError as e:
        staged.unlink(missing_ok=True)
        if str(e).startswith(f"{staged}: "):  # the staged card is gone: name what the user gave instead
            raise type(e)(str(e)[len(str(staged)) + 2:], where=f"{folder} (imported as {name!r})") from None
        raise
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return ds
