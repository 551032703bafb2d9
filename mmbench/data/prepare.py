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
from ..io import atomic_write_bytes, atomic_write_text, hash_params, sha256_file, storage, write_json
from ..names import inside
from ..paths import prepared_dir
from .cards import Card, source_label, validate_filters, validate_split
from .dataset import COLUMNS, PreparedDataset, split_fingerprint
from .filters import drop_duplicates, k_core, min_rating
from .formats import Format, Interactions, get_format
from .ids import integer_ids
from .splits import cold_items, make_split

PREPARED_SCHEMA = "mmbench.prepared/1"


def _package_dir(package: str, sub: str, where: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the files without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {package!r} is not installed", where=where,
                        hint=f"pip install {package} (make setup installs it), or use another source")
    return Path(list(spec.submodule_search_locations)[0]) / sub


def _folder_of(card: Card, src: dict, mirror: str | None) -> Path:
    """The local folder holding the files of ``src`` (a package's, a local one, or fetched)."""
    if src.get("package"):
        folder = _package_dir(src["package"], src.get("path", ""), str(card.path))
        if not folder.is_dir():
            raise DataError(f"folder {folder} not found in package {src['package']!r}", where=str(card.path))
        return folder
    if not (src.get("url") or src.get("downloads")):  # a local folder (e.g. written by `mmbench import`)
        folder = Path(src["path"]).expanduser()
        if not folder.is_absolute():
            folder = card.path.parent / folder
        if not folder.is_dir():
            raise DataError(f"source folder {folder} not found", where=str(card.path))
        return folder
    from .sources import fetch_source  # download layer (only for URL sources)

    return fetch_source(card, src, mirror=mirror)


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
            return src, _folder_of(card, src, mirror)
        except DataError as e:
            errors.append(str(e))
            if source is not None or len(sources) == 1:
                raise
    raise DataError("no source of the card could be used: " + " | ".join(errors), where=str(card.path))


def side_source_folder(card: Card, name: str, mirror: str | None = None, *, needed_by: str = "") -> Path:
    """The folder of the card's side source ``name`` (``[[side_sources]]``: files some features
    need beyond the dataset), fetched on first use; a failure says what needs it and how to
    provide it."""
    src = next(s for s in card.side_sources if s["name"] == name)
    try:
        return _folder_of(card, src, mirror)
    except DataError as e:
        from .sources import source_files

        names = ", ".join([f["file"] if f.get("file") else Path(f["url"]).name for f in source_files(src)]
                          + sorted(src.get("checksums", {})))
        raise DataError(f"{needed_by or 'this feature'} needs the side source {name!r} ({source_label(src)}), "
                        f"which could not be fetched: {e}", where=str(card.path),
                        hint=f"add a folder holding {names} to the mirror list (MMBENCH_MIRROR=DIR{os.pathsep}DIR2 "
                             f"or --mirror), or let it download") from None


def _verify_checksums(src: dict, folder: Path, files: list[str], where: str) -> dict[str, str]:
    """sha256 of each file (each must resolve inside ``folder``), checked against the source's pins."""
    sums = {}
    expected = src.get("checksums", {})
    for name in files:
        p = inside(folder, name, "file", where)
        if not (p.exists() or p.is_symlink()):
            raise DataError("file not found", where=str(p), hint="the source is incomplete; re-download it")
        sums[name] = sha256_file(p)
        if name in expected and expected[name] != sums[name]:
            raise DataError(f"sha256 mismatch: expected {expected[name][:12]}..., got {sums[name][:12]}...",
                            where=str(p), hint="the file is modified or corrupt; reinstall or re-download it")
    return sums


def _sort_ids(raw: np.ndarray) -> np.ndarray:
    """Unique ids in a stable order: numerically when all are integers (:func:`~mmbench.data.ids.integer_ids`),
    else lexically."""
    uniq = np.unique(raw)
    nums = integer_ids(uniq)
    return uniq if nums is None else uniq[np.argsort(nums, kind="stable")]


def _encode(raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(ids.tolist())}
    return np.fromiter((lookup[v] for v in raw.tolist()), dtype=np.int64, count=len(raw))


def _check_negatives(inter: Interactions, filters: dict, where: str) -> None:
    """Explicit negative feedback (rating <= 0, e.g. 0 = dislike) is never silently a positive."""
    if inter.rating is None or "min_rating" in filters:
        return
    neg = inter.rating <= 0
    if neg.any():
        j = int(np.argmax(neg))
        raise DataError(f"{int(neg.sum())} interactions have rating <= 0 (first: {inter.rating[j]:g}), which "
                        f"looks like explicit negative feedback", where=inter.where(j),
                        hint="set filters.min_rating in the card (mmbench import --positive-threshold X) "
                             "to say which ratings are positives")


_STAT_KEYS = {"raw_interactions": ("raw", "interactions"), "raw_users": ("raw", "users"),
              "raw_items": ("raw", "items"), "users": ("users",), "items": ("items",),
              "interactions": ("interactions",), "train_interactions": ("splits", "train", "interactions"),
              "valid_interactions": ("splits", "valid", "interactions"),
              "test_interactions": ("splits", "test", "interactions")}


def _check_published_stats(card: Card, stats: dict, defaults: bool) -> None:
    """The card's [stats] (published figures) must be reproduced by its default protocol."""
    diffs = []
    for key, want in sorted(card.data.get("stats", {}).items()):
        path = _STAT_KEYS.get(key)
        if path is None or not isinstance(want, int) or (path[0] != "raw" and not defaults):
            continue
        got = stats
        for p in path:
            got = got[p]
        if got != want:
            diffs.append(f"{key} {got} != {want}")
    if diffs:
        raise DataError("prepared statistics differ from the card's published ones: " + ", ".join(diffs),
                        where=str(card.path), hint="the source files differ from the published version; "
                                                   "check the source/mirror or the card's [stats]")


def prepare_dir_for(card: Card, filters: dict, split: dict, source_name: str) -> Path:
    key = hash_params({"card": card.name, "version": card.version, "filters": filters, "split": split,
                       "source": source_name})[:10]
    return prepared_dir() / card.name / f"v{card.version}" / f"{split['method']}-{key}"


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _side_table(fmt: Format, card: Card, folder: Path, role: str, ids: np.ndarray) -> str | None:
    side = fmt.read_side(card, folder, role)
    if side is None:
        return None
    lines = ["\t".join(["index", *side.fields])]
    for i, rid in enumerate(ids.tolist()):
        row = side.rows.get(rid)
        if row is None:
            row = [""] * len(side.fields)
            row[side.key] = rid
        # a tab or newline inside a field would break the table: keep the text, change the character
        lines.append("\t".join([str(i), *(v.replace("\t", " ").replace("\n", " ") for v in row)]))
    return "\n".join(lines) + "\n"


def prepare(card: Card, *, filters: dict | None = None, split: dict | None = None, source: str | None = None,
            mirror: str | None = None, force: bool = False, progress: bool = False) -> PreparedDataset:
    """Prepare a dataset from its card. ``filters``/``split`` override the card's defaults."""
    where = str(card.path)
    filters = validate_filters(dict(card.filters if filters is None else filters), where)
    split = validate_split(dict(card.split if split is None else split), where)
    defaults = filters == validate_filters(dict(card.filters), where) and split == card.split
    src, folder = resolve_source(card, source, mirror)
    out = prepare_dir_for(card, filters, split, src["name"])
    card = card.for_source(src)  # the source's format/roles override the card's
    with storage(out.parent):
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
        return _build(card, src, folder, filters, split, out, defaults)


def _input_sums(card: Card, src: dict, folder: Path) -> dict[str, str]:
    """sha256 of every input: the card's files the source has (the interactions always), the
    feature files, and every file the source pins (checked against the pin)."""
    named = [*card.files.values(), *card.data.get("features", {}).values()]
    for f in named:  # every file the card names stays inside the source folder, present or not
        inside(folder, f, "file", str(card.path))
    required = {card.files[r] for r in ("interactions", "train", "test") if r in card.files}
    files = [f for f in named if (folder / f).exists() or (folder / f).is_symlink() or f in required]
    files += list(src.get("checksums", {}))  # every pinned file, features and masks included
    return _verify_checksums(src, folder, sorted(set(files)), str(card.path))


def _filter(inter: Interactions, filters: dict, where: str) -> Interactions:
    """Duplicates, the rating threshold, then the k-core."""
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
    return inter.take(keep)


def _split_columns(inter: Interactions, split: dict, where: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """The prepared columns (final ids, canonical row order, split label), the user ids and the item ids."""
    user_ids, item_ids = _sort_ids(inter.user), _sort_ids(inter.item)
    user, item = _encode(inter.user, user_ids), _encode(inter.item, item_ids)
    # canonical row order: by user, then time, then item (independent of the file's order)
    ts = inter.timestamp if inter.timestamp is not None else np.zeros(len(user))
    order = np.lexsort((item, ts, user))
    user, item, ts = user[order], item[order], ts[order]
    rating = inter.rating[order] if inter.rating is not None else np.ones(len(user))
    preset = inter.label[order] if inter.label is not None else None
    label = make_split(split, user, item, ts if inter.timestamp is not None else None, preset, where)
    for lab, name in ((0, "train"), (2, "test")):
        if not (label == lab).any():
            raise DataError(f"the {name} split is empty", where=where, hint="check split.ratios / the label column")
    arrays = {"user": user.astype(np.int64), "item": item.astype(np.int64), "rating": rating.astype(np.float32),
              "timestamp": ts.astype(np.int64 if np.all(ts == np.round(ts)) else np.float64),
              "label": label.astype(np.int8)}
    return arrays, user_ids, item_ids


def _id_map(ids: np.ndarray) -> str:
    return "raw_id\n" + "\n".join(ids.tolist()) + "\n"


def _write_split(tmp: Path, arrays: dict, user_ids: np.ndarray, item_ids: np.ndarray) -> dict[str, str]:
    """The columns (``.npy``) and id maps into ``tmp``; returns the sha256 of each column file."""
    written = {}
    for name in COLUMNS:
        data = _npy_bytes(arrays[name])
        atomic_write_bytes(tmp / f"{name}.npy", data)
        written[f"{name}.npy"] = hashlib.sha256(data).hexdigest()
    atomic_write_text(tmp / "users.tsv", _id_map(user_ids))
    atomic_write_text(tmp / "items.tsv", _id_map(item_ids))
    return written


def _staged(out: Path) -> Path:
    """An empty ``<out>.incomplete`` to build in."""
    tmp = out.with_name(out.name + ".incomplete")
    with storage(tmp):
        if tmp.exists():  # left by a killed run (we hold the lock): start over
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    return tmp


def _put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, replacing an older build (only a prepared dataset:
    a folder with a manifest, which only mmbench writes)."""
    with storage(out):
        if out.exists():
            if not (out / "manifest.json").is_file():
                raise DataError("exists but is not a prepared dataset (no manifest.json); refusing to replace it",
                                where=str(out), hint="move it away and rerun")
            old = out.with_name(out.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)


def _build(card: Card, src: dict, folder: Path, filters: dict, split: dict, out: Path,
           defaults: bool = True) -> PreparedDataset:
    """Read ``card``'s files through its format, filter, split, and write the result to ``out``
    (built in ``<out>.incomplete`` and renamed into place at the end)."""
    where = str(card.path)
    fmt = get_format(card.format)
    input_sums = _input_sums(card, src, folder)
    inter = fmt.read_interactions(card, folder)
    _check_negatives(inter, filters, where)
    n_source = fmt.feature_row_count(card, inter)
    raw_stats = {"interactions": len(inter), "users": int(len(np.unique(inter.user))),
                 "items": int(len(np.unique(inter.item)))}
    arrays, user_ids, item_ids = _split_columns(_filter(inter, filters, where), split, where)
    stats = _stats(arrays, len(user_ids), len(item_ids), raw_stats)
    _check_published_stats(card, stats, defaults)
    tmp = _staged(out)
    try:
        files_written = _write_split(tmp, arrays, user_ids, item_ids)
        for role, ids, fname in (("items", item_ids, "item_attributes.tsv"),
                                 ("users", user_ids, "user_attributes.tsv")):
            table = _side_table(fmt, card, folder, role, ids)
            if table is not None:
                atomic_write_text(tmp / fname, table)
        features, provenance = _copy_card_features(fmt, card, folder, tmp, item_ids.tolist(), n_source,
                                                   resplit=not defaults)
        write_json(tmp / "manifest.json", {
            "schema": PREPARED_SCHEMA,
            "dataset": {"name": card.name, "version": card.version, "title": card.meta["title"],
                        "license": card.meta["license"], "modalities": card.meta["modalities"]},
            "card_sha256": card.sha256,
            "source": {"name": src["name"], "files": input_sums},
            "filters": filters,
            "split": split,
            "fingerprint": split_fingerprint(arrays, _id_map(user_ids), _id_map(item_ids)),
            "files": files_written,
            "stats": stats,
            **_cold_list(split, item_ids, arrays),
            "features": features,
            "feature_provenance": provenance,
            "mmbench_version": __version__,
        })
        _put_in_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays behind (disk full included)
        raise
    return PreparedDataset.load(out)


def _cold_list(split: dict, item_ids: np.ndarray, arrays: dict) -> dict:
    """A ``cold_items`` split's manifest entry: valid's and test's cold items (index and raw id)
    and how many items have no training interaction (the cold ones, plus any warm item the
    warm split left without one: the ``cold`` item group of the metrics counts them all)."""
    if split["method"] != "cold_items":
        return {}
    valid, test = cold_items(split, len(item_ids))
    trained = np.unique(arrays["item"][arrays["label"] == 0])
    return {"cold_items": {"valid": {"index": valid.tolist(), "id": item_ids[valid].tolist()},
                           "test": {"index": test.tolist(), "id": item_ids[test].tolist()},
                           "without_training": len(item_ids) - len(trained)}}


def _copy_card_features(fmt: Format, card: Card, folder: Path, out: Path, raw_ids: list[str],
                        n_source: int | None = None, resplit: bool = False) -> tuple[dict[str, str], dict[str, dict]]:
    """Row-aligned feature files named by the card go into the feature store, each with the
    provenance the card declares (``resplit``: the dataset is split otherwise than the card's
    default); returns key -> fingerprint and key -> provenance.

    A file that is absent is skipped (sources may ship only some features); one that is
    present must be a 2-D finite numeric matrix with one row per item of the source
    (``n_source``: the item count of an MMRec source before filtering, checked exactly).
    """
    feats = card.data.get("features", {})
    if not feats:
        return {}, {}
    from ..features.provenance import declared
    from ..features.store import FeatureStore, load_npy, validate_matrix

    store = FeatureStore(out / "features", len(raw_ids))
    rows = None
    out_fp, out_prov = {}, {}
    for key, fname in sorted(feats.items()):
        p = folder / str(fname)
        if not (p.exists() or p.is_symlink()):
            continue
        mat = load_npy(p)
        if mat.ndim != 2:
            raise DataError(f"feature matrix has shape {mat.shape}, expected (n_items, dim)", where=str(p))
        dtype = str(mat.dtype)
        mat = validate_matrix(mat, len(mat), where=str(p))  # dtype, NaN/inf (rows named as in the file)
        if rows is None:
            rows = fmt.feature_rows(card, folder, raw_ids, str(p))
        if n_source is not None and len(mat) != n_source:
            raise DataError(f"feature file has {len(mat)} rows but the interaction file has {n_source} items",
                            where=str(p), hint="row i of a feature file must be item i; regenerate the file")
        if rows.max(initial=-1) >= len(mat):
            raise DataError(f"feature file has {len(mat)} rows but item row {int(rows.max())} is needed",
                            where=str(p), hint="row i of a feature file must be item i")
        mask = None
        mpath = p.with_name(p.name[:-4] + ".mask.npy") if p.name.endswith(".npy") else None
        if mpath is not None and mpath.is_file():  # optional: which rows are present (bool, one per row)
            m = load_npy(mpath)
            if m.dtype != np.bool_ or m.shape != (len(mat),):
                raise DataError(f"mask has dtype {m.dtype} and shape {m.shape}, expected bool ({len(mat)},)",
                                where=str(mpath))
            mask = m[rows]
        prov = declared(card, key, resplit=resplit)
        feat = store.put(key, mat[rows], mask, meta={"source": str(fname), "source_sha256": sha256_file(p),
                                                     "source_dtype": dtype, "provenance": prov})
        out_fp[key], out_prov[key] = feat.fingerprint, prov
    return out_fp, out_prov


def share_features(source: PreparedDataset, target: PreparedDataset, keys: list[str]) -> list[str]:
    """Copy the features ``keys`` that ``target`` lacks from ``source``, a preparation of the
    same items under another split (features describe items, not a split: a suite with its
    own split reads the features extracted for the card's). Returns the keys copied; the
    item lists must be identical, row for row."""
    wanted = [k for k in keys if k not in target.features and k in source.features]
    if not wanted:
        return []
    if source.item_raw_ids() != target.item_raw_ids():
        raise DataError(f"cannot share features {wanted}: the two preparations index different items",
                        where=str(target.path), hint="extract the features for this preparation")
    for k in wanted:
        f = source.features.get(k)
        target.features.put(k, f.values, f.mask, meta={m: v for m, v in f.meta.items()
                                                         if m not in ("key", "fingerprint", "shape", "missing_rows")})
    record_features(target)
    return wanted


def record_features(target) -> dict[str, str]:
    """Write the feature store's fingerprints and provenance into ``manifest.json`` (atomically);
    return the fingerprints.

    ``target`` is a prepared folder or a ``PreparedDataset`` (whose in-memory manifest is updated too).
    """
    from ..features.provenance import UNKNOWN
    from ..features.store import FeatureStore
    from ..io import read_json

    from filelock import FileLock

    path = Path(getattr(target, "path", target))
    with FileLock(str(path) + ".manifest.lock"):  # read-modify-write: one process at a time
        manifest = read_json(path / "manifest.json")
        store = FeatureStore(path / "features", int(manifest["stats"]["items"]))
        metas = {key: read_json(store.root / key.replace("/", "__") / "meta.json") for key in store.keys()}
        fps = {key: meta["fingerprint"] for key, meta in metas.items()}
        provs = {key: meta.get("provenance") or dict(UNKNOWN) for key, meta in metas.items()}
        if manifest.get("features") != fps or manifest.get("feature_provenance") != provs:
            manifest["features"], manifest["feature_provenance"] = fps, provs
            write_json(path / "manifest.json", manifest)
    if isinstance(getattr(target, "manifest", None), dict):
        target.manifest["features"], target.manifest["feature_provenance"] = dict(fps), provs
    return fps


def _stats(a: dict, n_users: int, n_items: int, raw: dict) -> dict:
    per = {}
    for lab, name in ((0, "train"), (1, "valid"), (2, "test")):
        m = a["label"] == lab
        per[name] = {"interactions": int(m.sum()), "users": int(len(np.unique(a["user"][m]))),
                     "items": int(len(np.unique(a["item"][m])))}
    n = len(a["user"])
    return {"users": n_users, "items": n_items, "interactions": int(n),
            "density": round(n / (n_users * n_items), 6), "raw": raw, "splits": per}
