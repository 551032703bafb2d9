"""Card -> prepared dataset: read the source, filter, map ids, split, fingerprint, write.

The result is built in ``<dir>.incomplete`` and renamed into place at the end, so a crash
never leaves something that looks finished. Same card + filters + split seed ->
byte-identical files.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DataError
from ..io import atomic_write_bytes, atomic_write_text, hash_params, sha256_file, write_json
from ..paths import prepared_dir
from .cards import Card, validate_filters, validate_split
from .dataset import COLUMNS, PreparedDataset, split_fingerprint
from .filters import drop_duplicates, k_core, min_rating
from .formats import Interactions, read_atomic_interactions, read_atomic_side
from .splits import make_split

PREPARED_SCHEMA = "mmbench.prepared/1"


def _package_dir(package: str, sub: str, where: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the files without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {package!r} is not installed", where=where,
                        hint=f"pip install {package} (make setup installs it), or use another source")
    return Path(list(spec.submodule_search_locations)[0]) / sub


def resolve_source(card: Card, source: str | None = None, mirror: str | None = None) -> tuple[dict, Path]:
    """Choose a source of the card and return it with the local folder holding its files."""
    sources = card.sources
    if source is not None:
        sources = [s for s in sources if s["name"] == source]
        if not sources:
            names = ", ".join(s["name"] for s in card.sources)
            raise DataError(f"card has no source {source!r} (has: {names})", where=str(card.path))
    errors = []
    for src in sources:
        try:
            if src.get("package"):
                folder = _package_dir(src["package"], src.get("path", ""), str(card.path))
                if not folder.is_dir():
                    raise DataError(f"folder {folder} not found in package {src['package']!r}", where=str(card.path))
                return src, folder
            if not src.get("url"):  # a local folder (e.g. written by `mmbench import`)
                folder = Path(src["path"]).expanduser()
                if not folder.is_absolute():
                    folder = card.path.parent / folder
                if not folder.is_dir():
                    raise DataError(f"source folder {folder} not found", where=str(card.path))
                return src, folder
            from .sources import fetch_source  # download layer (only for URL sources)

            return src, fetch_source(card, src, mirror=mirror)
        except DataError as e:
            errors.append(str(e))
            if source is not None or len(sources) == 1:
                raise
    raise DataError("no source of the card could be used: " + " | ".join(errors), where=str(card.path))


def _verify_checksums(src: dict, folder: Path, files: list[str]) -> dict[str, str]:
    sums = {}
    expected = src.get("checksums", {})
    for name in files:
        p = folder / name
        if not p.is_file():
            raise DataError("file not found", where=str(p), hint="the source is incomplete; re-download it")
        sums[name] = sha256_file(p)
        if name in expected and expected[name] != sums[name]:
            raise DataError(f"sha256 mismatch: expected {expected[name][:12]}..., got {sums[name][:12]}...",
                            where=str(p), hint="the file is modified or corrupt; reinstall or re-download it")
    return sums


def _sort_ids(raw: np.ndarray) -> np.ndarray:
    """Unique ids in a stable order: numerically when all are integers, else lexically."""
    uniq = np.unique(raw)
    try:
        nums = uniq.astype(np.int64)
        return uniq[np.argsort(nums, kind="stable")]
    except ValueError:
        return uniq


def _encode(raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(ids.tolist())}
    return np.fromiter((lookup[v] for v in raw.tolist()), dtype=np.int64, count=len(raw))


def read_interactions(card: Card, folder: Path) -> Interactions:
    fmt = card.meta["format"]
    path = folder / card.files["interactions"]
    if fmt in ("recbole", "mmrec"):
        return read_atomic_interactions(path, card.columns)
    from . import formats_extra  # other formats live beside (issue: multimodal data layer)

    return formats_extra.read_interactions(fmt, card, folder)


def prepare_dir_for(card: Card, filters: dict, split: dict, source_name: str) -> Path:
    key = hash_params({"card": card.name, "version": card.version, "filters": filters, "split": split,
                       "source": source_name})[:10]
    return prepared_dir() / card.name / f"v{card.version}" / f"{split['method']}-{key}"


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _side_table(card: Card, folder: Path, role: str, key_col: str, ids: np.ndarray) -> str | None:
    name = card.files.get(role)
    if not name or not (folder / name).is_file():
        return None
    fields, rows = read_atomic_side(folder / name, key_col)
    lines = ["\t".join(["index", *fields])]
    k = fields.index(key_col)
    for i, rid in enumerate(ids.tolist()):
        row = rows.get(rid)
        if row is None:
            row = [""] * len(fields)
            row[k] = rid
        lines.append("\t".join([str(i), *row]))
    return "\n".join(lines) + "\n"


def prepare(card: Card, *, filters: dict | None = None, split: dict | None = None, source: str | None = None,
            mirror: str | None = None, force: bool = False, progress: bool = False) -> PreparedDataset:
    """Prepare a dataset from its card. ``filters``/``split`` override the card's defaults."""
    where = str(card.path)
    filters = validate_filters(dict(card.filters if filters is None else filters), where)
    split = validate_split(dict(card.split if split is None else split), where)
    src, folder = resolve_source(card, source, mirror)
    out = prepare_dir_for(card, filters, split, src["name"])
    out.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    # one builder at a time per prepared folder (several runs may start at once)
    with FileLock(str(out) + ".lock"):
        if out.is_dir() and not force:
            try:
                ds = PreparedDataset.load(out)
                if ds.manifest.get("card_sha256") == card.sha256:
                    return ds
            except DataError:
                pass  # corrupt or stale: rebuild below
        return _build(card, src, folder, filters, split, out)


def _build(card: Card, src: dict, folder: Path, filters: dict, split: dict, out: Path) -> PreparedDataset:
    where = str(card.path)
    files = [f for f in card.files.values() if (folder / f).exists() or f == card.files["interactions"]]
    input_sums = _verify_checksums(src, folder, sorted(set(files)))

    inter = read_interactions(card, folder)
    raw_stats = {"interactions": len(inter), "users": int(len(np.unique(inter.user))),
                 "items": int(len(np.unique(inter.item)))}
    inter = drop_duplicates(inter, filters.get("duplicates", "error"))
    if "min_rating" in filters:
        inter = min_rating(inter, float(filters["min_rating"]))
    if len(inter) == 0:
        raise DataError("no interactions left after filtering", where=where, hint="relax filters.min_rating")
    # k-core on provisional codes, then final ids from what survives
    pu = np.unique(inter.user, return_inverse=True)[1]
    pi = np.unique(inter.item, return_inverse=True)[1]
    keep = k_core(pu, pi, filters.get("user_core", 0), filters.get("item_core", 0))
    if len(keep) == 0:
        raise DataError("k-core filtering removed every interaction", where=where,
                        hint="lower filters.user_core / filters.item_core")
    inter = inter.take(keep)
    user_ids, item_ids = _sort_ids(inter.user), _sort_ids(inter.item)
    user, item = _encode(inter.user, user_ids), _encode(inter.item, item_ids)
    # canonical row order: by user, then time, then item (independent of the file's order)
    ts = inter.timestamp if inter.timestamp is not None else np.zeros(len(user))
    order = np.lexsort((item, ts, user))
    user, item, ts = user[order], item[order], ts[order]
    rating = inter.rating[order] if inter.rating is not None else np.ones(len(user))
    preset = inter.label[order] if inter.label is not None else None
    label = make_split(split, user, ts if inter.timestamp is not None else None, preset, where)
    for lab, name in ((0, "train"), (2, "test")):
        if not (label == lab).any():
            raise DataError(f"the {name} split is empty", where=where, hint="check split.ratios / the label column")
    arrays = {"user": user.astype(np.int64), "item": item.astype(np.int64), "rating": rating.astype(np.float32),
              "timestamp": ts.astype(np.int64 if np.all(ts == np.round(ts)) else np.float64),
              "label": label.astype(np.int8)}
    user_map = "raw_id\n" + "\n".join(user_ids.tolist()) + "\n"
    item_map = "raw_id\n" + "\n".join(item_ids.tolist()) + "\n"
    fingerprint = split_fingerprint(arrays, user_map, item_map)

    tmp = out.with_name(out.name + ".incomplete")
    if tmp.exists():  # left by a killed run (we hold the lock): start over
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    files_written = {}
    for name in COLUMNS:
        data = _npy_bytes(arrays[name])
        atomic_write_bytes(tmp / f"{name}.npy", data)
        files_written[f"{name}.npy"] = hashlib.sha256(data).hexdigest()
    atomic_write_text(tmp / "users.tsv", user_map)
    atomic_write_text(tmp / "items.tsv", item_map)
    for role, key_col, ids, fname in (("items", card.columns["item"], item_ids, "item_attributes.tsv"),
                                      ("users", card.columns["user"], user_ids, "user_attributes.tsv")):
        table = _side_table(card, folder, role, key_col, ids)
        if table is not None:
            atomic_write_text(tmp / fname, table)
    manifest = {
        "schema": PREPARED_SCHEMA,
        "dataset": {"name": card.name, "version": card.version, "title": card.meta["title"],
                    "license": card.meta["license"], "modalities": card.meta["modalities"]},
        "card_sha256": card.sha256,
        "source": {"name": src["name"], "files": input_sums},
        "filters": filters,
        "split": split,
        "fingerprint": fingerprint,
        "files": files_written,
        "stats": _stats(arrays, len(user_ids), len(item_ids), raw_stats),
        "mmbench_version": __version__,
    }
    write_json(tmp / "manifest.json", manifest)
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    _copy_card_features(card, folder, out)
    return PreparedDataset.load(out)


def _copy_card_features(card: Card, folder: Path, out: Path) -> None:
    """Row-aligned feature files named by the card are imported into the feature store."""
    feats = card.data.get("features", {})
    if not feats:
        return
    from ..features.store import FeatureStore, load_npy

    ds = PreparedDataset.load(out)
    store = FeatureStore(out / "features", ds.n_items)
    raw_ids = ds.item_raw_ids()
    for key, fname in sorted(feats.items()):
        p = folder / fname
        if not p.is_file():
            continue
        mat = load_npy(p)
        # rows are aligned to the source's item ids (0..n-1); reorder to our item index
        try:
            rows = np.asarray([int(r) for r in raw_ids])
        except ValueError:
            raise DataError("row-aligned features need integer item ids", where=str(p)) from None
        if rows.max(initial=-1) >= len(mat):
            raise DataError(f"feature file has {len(mat)} rows but item id {rows.max()} exists", where=str(p))
        store.put(key, mat[rows], meta={"source": fname, "source_sha256": sha256_file(p)})


def _stats(a: dict, n_users: int, n_items: int, raw: dict) -> dict:
    per = {}
    for lab, name in ((0, "train"), (1, "valid"), (2, "test")):
        m = a["label"] == lab
        per[name] = {"interactions": int(m.sum()), "users": int(len(np.unique(a["user"][m]))),
                     "items": int(len(np.unique(a["item"][m])))}
    n = len(a["user"])
    return {"users": n_users, "items": n_items, "interactions": int(n),
            "density": round(n / (n_users * n_items), 6), "raw": raw, "splits": per}
