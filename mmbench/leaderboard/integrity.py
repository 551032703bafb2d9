"""Records are evidence, not testimony: what a leaderboard checks before it believes one.

Every board (every rules version):

- a final record's per-user file is present and readable, and every test metric it holds
  per user recomputes, as the mean over users, to the record's value (to 1e-9; the record
  rounds to 8 decimals). Coverage and Gini are one value per evaluation and the records'
  RMSE/MAE are over all rated pairs, so they cannot be recomputed from per-user values:
  those are covered by the manifest (and by ``leaderboard reproduce``);
- a final record chosen by a search has the search records its selection claims, on every
  claimed seed, with the validation values it lists.

Boards under rules 2 in addition:

- the committed board's manifest (``leaderboard.json`` ``manifest``: the sha256 of every
  record and per-user file it uses) holds: a file that differs from it is rejected, a
  file it lists that is gone is reported;
- a committed board (records kept with the suite) accepts records made from a clean,
  known source tree only (``env.git``);
- every final record says which of its features were derived from interactions beyond the
  training split (``features_leak``, from the dataset card's provenance); a row reading one
  is marked;
- every final record is certified converged or marked: a run whose best validation epoch
  lies within its last ``patience`` evaluations of the ``epochs`` budget was cut short.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from ..evaluate.metrics import get
from ..io import sha256_file

TOLERANCE = 1e-9


def per_user_file(results: Path, rel: str) -> tuple[dict | None, str | None]:
    """(the per-user arrays of the final record ``rel``, None) or (None, why it cannot be read)."""
    from ..records import per_user_path, read_per_user

    path = results / rel
    if not per_user_path(path).is_file():
        return None, f"its per-user file {per_user_path(path).name} is missing"
    try:
        return read_per_user(path), None
    except Exception as e:  # noqa: BLE001 - a reason, never a crash
        return None, f"its per-user file is unreadable ({e})"


def recompute_reason(rec: dict, per_user: dict) -> str | None:
    """Why the record's test metrics disagree with its per-user values (None: they agree)."""
    for m, value in sorted(rec["metrics"].get("test", {}).items()):
        entry = get(m)
        if not entry.per_user:
            continue
        if m not in per_user:
            return f"metrics.test.{m} has no per-user values in its per-user file"
        if entry.kind == "rating":
            continue  # over all rated pairs: not a mean of the per-user values
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(np.asarray(per_user[m], dtype=np.float64)) if np.size(per_user[m]) else np.nan
        if not np.isfinite(mean) or abs(round(float(mean), 8) - value) > TOLERANCE:
            return f"metrics.test.{m} = {value} but its per-user file gives {float(mean):.8f}"
    return None


def claimed_search_reason(rec: dict, searches: dict[tuple[str, int], dict]) -> str | None:
    """Why a final record's selection is not backed by the search records (``searches``:
    (params hash, seed) -> accepted search record); None when it is."""
    sel = rec["selection"]
    metric = sel.get("metric")
    for c in sel.get("candidates", []):
        if c.get("valid") is None:
            continue  # a failed candidate: its record is a failed run, listed apart
        h = c.get("params_hash", "")
        vals = []
        for seed in sel.get("seeds", []):
            found = searches.get((h, seed))
            if found is None:
                return f"its selection claims candidate {h[:8]} on seed {seed}, whose search record is missing"
            vals.append(found["metrics"]["valid"].get(metric))
        if None in vals or round(sum(vals) / len(vals), 8) != c["valid"]:
            return f"its selection says candidate {h[:8]} scored {c['valid']} on validation, its search records do not"
    return None


def manifest_reason(results: Path, rel: str, manifest: dict[str, str]) -> str | None:
    """Why the record ``rel`` (with its per-user file) differs from ``manifest`` (None: it
    does not, or the manifest does not list it)."""
    from ..records import per_user_path

    for path in (results / rel, per_user_path(results / rel)):
        key = path.relative_to(results).as_posix()
        if key in manifest and (not path.is_file() or sha256_file(path) != manifest[key]):
            return f"{path.name} differs from the sha256 in the committed board's manifest"
    return None


def manifest(results: Path, rels: list[str]) -> dict[str, str]:
    """sha256 of the records ``rels`` and of their per-user files (those that exist)."""
    from ..records import per_user_path

    out = {}
    for rel in rels:
        for path in (results / rel, per_user_path(results / rel)):
            if path.is_file():
                out[path.relative_to(results).as_posix()] = sha256_file(path)
    return dict(sorted(out.items()))


def converged(rec: dict) -> bool | None:
    """False when the run stopped at its epoch budget with its best validation epoch within
    the last ``patience`` evaluations (early stopping could not have fired: the training was
    cut, not finished); None for a model without an epoch budget and early stopping."""
    params, fit = rec["model"]["params"], rec.get("fit") or {}
    if not isinstance(params.get("epochs"), int) or not isinstance(params.get("patience"), int):
        return None
    budget, window = params["epochs"], params["patience"] * params.get("eval_every", 1)
    return not (fit.get("epochs_run", 0) >= budget and (fit.get("best_epoch") or 0) > budget - window)


def compute(recs: list[dict]) -> dict:
    """The board's compute: the sum of fit + evaluation time over its records, and the wall
    time during which at least one of them was running (from each record's start time,
    ``created``, noted to the second when the run began, and its duration)."""
    spans, total = [], 0.0
    for rec in recs:
        t = rec["timing"]
        total += t.get("fit_s", 0.0) + t.get("eval_s", 0.0)
        start = _dt.datetime.fromisoformat(rec["created"]).timestamp()
        spans.append((start, start + t.get("total_s", 0.0)))
    wall, last_end = 0.0, -np.inf
    for start, end in sorted(spans):
        wall += max(0.0, end - max(start, last_end))
        last_end = max(last_end, end)
    return {"runs": len(recs), "compute_s": round(total, 1), "wall_s": round(wall, 1)}
