"""Run records: one JSON per (suite, dataset, model, params, seed), written atomically.

Path: ``<results>/<suite>/<dataset>/<model>/<params_hash[:8]>/seed<N>.json`` with the
per-user metric vectors beside it (``seed<N>.per_user.npz``, no pickles). NaN is never
written; a failed run is recorded with ``status = "failed"`` and its reason.

``selection`` says how the configuration was chosen (``on`` is always ``"valid"`` for a
record a leaderboard accepts). Hyper-parameter searches write one *search* record per
candidate configuration (``selection.stage = "search"``, file ``seed<N>.search.json``):
it carries validation metrics only, the test split is never evaluated for it. The chosen
configuration is then run as a *final* record (``stage = "final"``, the default) whose
``selection`` lists the candidates and their validation values.

A suite entry that names its own feature keys (``[[models]] features``) records them,
sorted, as ``selection.features``; its records live in ``<params_hash[:8]>-f<tag>/``
(:func:`feature_tag`), so two entries of one model and parameters on two feature sets
never share a record.

``features_leak`` lists the record's features derived from interactions beyond the
training split (as their dataset card declares, :mod:`mmbench.features.provenance`): a
leaderboard marks the rows that read one.

A failed record never blocks a rerun: the rerun moves it aside as history
(``seed<N>.failed-<k>.json``, never read as a record) and takes its place.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RecordError
from .io import atomic_write_bytes, canonical_json, read_json, sha256_bytes, write_json
from .names import check_name

SCHEMA = "mmbench.run/1"

_REQUIRED = {
    "schema": str, "status": str, "suite": str, "dataset": dict, "features": dict, "model": dict,
    "protocol": dict, "protocol_hash": str, "seed": int, "selection": dict, "metrics": dict,
    "timing": dict, "env": dict, "created": str,
}
_MODEL_REQUIRED = {"name": str, "params": dict, "params_hash": str, "distribution": str, "version": str}


STAGES = ("final", "search")
RECORD_NAME = re.compile(r"seed\d+(\.search)?\.json")  # a record's file name (history files do not match)


def record_path(results: Path, suite: str, dataset: str, model: str, params_hash: str, seed: int,
                stage: str = "final", features: list[str] | None = None) -> Path:
    """Where a record lives under ``results``; the suite and dataset must be names (no
    ``..``, no path), so a record never lands outside ``results``. A run given a suite
    entry's own ``features`` lives in a folder of its own."""
    check_name(suite, "suite")
    check_name(dataset, "dataset")
    name = f"seed{seed}.json" if stage == "final" else f"seed{seed}.{stage}.json"
    folder = params_hash[:8] if features is None else f"{params_hash[:8]}-{feature_tag(features)}"
    return Path(results) / suite / dataset / model / folder / name


def feature_tag(keys: list[str]) -> str:
    """``f`` and 6 hex digits of the sha256 of the sorted feature keys: names a feature set in a path."""
    return "f" + sha256_bytes(canonical_json(sorted(keys), indent=None).encode())[:6]


def failed_history(path: Path) -> list[tuple[str, str]]:
    """Earlier failed runs of the record at ``path`` kept beside it: (file name, reason)."""
    out = []
    for p in sorted(path.parent.glob(path.stem + ".failed-*.json")):
        try:
            why = read_json(p).get("error", "")
        except Exception as e:  # noqa: BLE001 - history is shown, never used
            why = f"unreadable: {e}"
        out.append((p.name, why))
    return out


def finished(path: Path) -> dict | None:
    """The record at ``path`` if it is a finished run; None if there is none or it failed
    (a rerun replaces a failed one). An unreadable record is an error naming the file."""
    if not path.exists():
        return None
    rec = read_record(path)
    return rec if rec["status"] == "ok" else None


def retire_failed(path: Path) -> Path | None:
    """Move a failed record at ``path`` aside as history before its rerun; returns its new path."""
    if not path.exists() or read_record(path)["status"] == "ok":
        return None
    k = 1
    while (dest := path.with_name(f"{path.stem}.failed-{k}.json")).exists():
        k += 1
    path.replace(dest)
    return dest


def model_dir(name: str) -> str:
    """The folder of a model's records: its name with ``:`` and ``/`` (a ``file.py:Class``
    model) made safe for a path."""
    return name.replace(":", "-").replace("/", "-")


def record_stage(rec: dict) -> str:
    """'final' (evaluated on test, may enter a leaderboard) or 'search' (validation only)."""
    return rec.get("selection", {}).get("stage", "final")


def per_user_path(record_file: Path) -> Path:
    return record_file.with_name(record_file.stem + ".per_user.npz")


def validate_record(rec: Any, where: str) -> dict:
    if not isinstance(rec, dict):
        raise RecordError("a record must be a JSON object", where=where)
    if rec.get("schema") != SCHEMA:
        raise RecordError(f"schema is {rec.get('schema')!r}, expected {SCHEMA!r}", where=where)
    for key, typ in _REQUIRED.items():
        if key not in rec:
            raise RecordError(f"missing field {key!r}", where=where)
        if not isinstance(rec[key], typ) or (typ is int and isinstance(rec[key], bool)):
            raise RecordError(f"field {key!r} must be {typ.__name__}", where=where)
    for key, typ in _MODEL_REQUIRED.items():
        if not isinstance(rec["model"].get(key), typ):
            raise RecordError(f"field 'model.{key}' missing or not {typ.__name__}", where=where)
    if rec["status"] not in ("ok", "failed"):
        raise RecordError(f"status must be 'ok' or 'failed', got {rec['status']!r}", where=where)
    if rec["status"] == "failed" and not rec.get("error"):
        raise RecordError("a failed record must say why (field 'error')", where=where)
    sel = rec["selection"]
    if not isinstance(sel.get("method"), str) or not isinstance(sel.get("on"), str):
        raise RecordError("field 'selection' must name its 'method' and the split it selects 'on'", where=where)
    stage = record_stage(rec)
    if stage not in STAGES:
        raise RecordError(f"selection.stage must be one of {list(STAGES)}, got {stage!r}", where=where)
    if stage == "search" and "test" in rec["metrics"]:
        raise RecordError("a search record must not carry test metrics (the test split is evaluated only "
                          "for the chosen configuration)", where=where)
    if rec["status"] == "ok":
        for split in (("valid",) if stage == "search" else ("valid", "test")):
            vals = rec["metrics"].get(split)
            if not isinstance(vals, dict) or not vals:
                raise RecordError(f"metrics.{split} missing", where=where)
            for k, v in vals.items():
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    raise RecordError(f"metrics.{split}.{k} is not a finite number: {v!r}", where=where)
    for key in ("name", "fingerprint"):
        if not isinstance(rec["dataset"].get(key), str):
            raise RecordError(f"field 'dataset.{key}' missing", where=where)
    _check_features(rec, where)
    return rec


def _check_features(rec: dict, where: str) -> None:
    """``features_leak`` (absent in records made before provenance was recorded): the keys of
    ``features`` derived from interactions beyond the training split; ``selection.features``
    (a suite entry's own keys): sorted keys, among which are all the record read."""
    given = rec["selection"].get("features")
    if given is not None:
        if not isinstance(given, list) or not all(isinstance(k, str) for k in given) or given != sorted(set(given)):
            raise RecordError("field 'selection.features' must be a sorted list of feature keys", where=where)
        if stray := sorted(set(rec["features"]) - set(given)):
            raise RecordError(f"reads feature {stray[0]!r}, which is not among the keys it was given "
                              f"(selection.features {given})", where=where)
    leak = rec.get("features_leak", [])
    if not isinstance(leak, list) or not all(isinstance(k, str) for k in leak):
        raise RecordError("field 'features_leak' must be a list of feature keys", where=where)
    stray = sorted(set(leak) - set(rec["features"]))
    if stray:
        raise RecordError(f"features_leak names {stray[0]!r}, which is not among the record's features",
                          where=where)


def write_record(path: Path, rec: dict, per_user: dict[str, np.ndarray] | None = None) -> None:
    validate_record(rec, str(path))
    if per_user:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in per_user.items()})
        atomic_write_bytes(per_user_path(path), buf.getvalue())
    write_json(path, rec)  # the record last: its presence means the run is complete


def read_record(path: Path) -> dict:
    return validate_record(read_json(path), str(path))


def read_per_user(record_file: Path) -> dict[str, np.ndarray]:
    p = per_user_path(record_file)
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RecordError("per-user metric file not found", where=str(p)) from None
    except (ValueError, OSError) as e:
        raise RecordError(f"cannot read per-user metrics ({e})", where=str(p)) from None


def dirty_reason(rec: dict) -> str | None:
    """Why the record's source tree is not a clean, known commit (None: it is)."""
    git = rec["env"].get("git") or {}
    if not git.get("sha"):
        return "made outside a git checkout of mmbench: its code cannot be identified"
    if git.get("dirty") is not False:
        return f"made from a dirty working tree (commit {git['sha'][:10]} plus uncommitted changes)"
    return None


def iter_records(results: Path, suite: str | None = None):
    """Yield (path, record or RecordError) for every record under results[/suite]."""
    root = Path(results) / suite if suite else Path(results)
    if not root.is_dir():
        return
    for p in sorted(root.rglob("seed*.json")):
        if not RECORD_NAME.fullmatch(p.name):
            continue
        try:
            yield p, read_record(p)
        except Exception as e:  # noqa: BLE001 - reported, never averaged
            yield p, e
