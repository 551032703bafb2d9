"""Which records a leaderboard uses: those that fit the suite, and for a searched model the
final records of the configuration its search records choose.

Records whose dataset fingerprint, features, protocol, seed or selection do not fit the
suite are rejected with a reason, never averaged; failed runs never enter the table. A
record chosen with anything but the validation split is rejected.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..records import iter_records, record_stage
from ..suite.definition import recorded_name
from ..suite.plan import choose


def identity(suite) -> dict:
    """What may not change within one version of a leaderboard."""
    ds = suite.dataset
    return {"dataset": {"name": ds["name"], "version": ds["version"], "fingerprint": ds.get("fingerprint")},
            "features": sorted(ds.get("features", [])) if "features" in ds else None,
            "feature_fingerprints": dict(sorted(ds.get("feature_fingerprints", {}).items())),
            "protocol_hash": suite.protocol.hash}


def _majority(values: list[str]) -> str | None:
    if not values:
        return None
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))


def _entry_for(suite, rec: dict):
    name = rec["model"]["name"]
    for m in suite.models:
        if recorded_name(m.name) == name and m.matches(rec["model"]["params"]):
            return m
    return None


def _reject_reason(rec: dict, suite, expected_fp: str | None, feature_fps: dict) -> str | None:
    if rec["suite"] != suite.name:
        return f"suite {rec['suite']!r} is not {suite.name!r}"
    ds = rec["dataset"]
    if ds["name"] != suite.dataset["name"] or str(ds.get("version")) != suite.dataset["version"]:
        return f"dataset {ds['name']}@{ds.get('version')} is not {suite.dataset['name']}@{suite.dataset['version']}"
    if expected_fp and ds["fingerprint"] != expected_fp:
        return f"dataset fingerprint {ds['fingerprint'][:12]} differs from the suite's {expected_fp[:12]}"
    if rec["protocol_hash"] != suite.protocol.hash:
        return f"protocol {rec['protocol_hash']} differs from the suite's {suite.protocol.hash}"
    on = rec["selection"].get("on")
    if on != "valid":
        return (f"selected on {on!r}: only records chosen on the validation split enter a leaderboard "
                "(a choice that saw test metrics is not a result)")
    want = suite.dataset.get("features")
    if want is not None and not set(rec["features"]) <= set(want):
        return f"uses features {sorted(rec['features'])} outside the suite's {sorted(want)}"
    for key, fp in sorted(rec["features"].items()):
        if key in feature_fps and fp != feature_fps[key]:
            return f"feature {key} has fingerprint {fp[:12]}, the suite's is {feature_fps[key][:12]}"
    seeds = suite.search_seeds if record_stage(rec) == "search" else suite.seeds
    if rec["seed"] not in seeds:
        return f"seed {rec['seed']} is not one of the suite's seeds {seeds}"
    entry = _entry_for(suite, rec)
    if entry is None:
        return (f"model {rec['model']['name']!r} with these parameters is not in the suite "
                f"(params {rec['model']['params_hash'][:8]})")
    sel = rec["selection"]
    if record_stage(rec) == "final" and entry.method != "fixed":
        if sel.get("method") != entry.method or sel.get("chosen") != rec["model"]["params_hash"]:
            return (f"{entry.key} is chosen by a {entry.method} search in this suite, but this record was not "
                    "the search's choice")
    return None


def load_records(suite, results: Path):
    """Accepted final records by (entry key, params hash), accepted search records by entry,
    and the rejected / failed lists."""
    rejected, failed, found = [], [], []
    for path, rec in iter_records(results, suite.name):
        rel = path.relative_to(results).as_posix()
        if isinstance(rec, Exception):
            rejected.append((rel, f"invalid record: {rec}"))
        elif rec["status"] != "ok":
            failed.append((rel, rec.get("error", "")))
        else:
            found.append((rel, rec))
    expected_fp = suite.dataset.get("fingerprint") or _majority(
        [r["dataset"]["fingerprint"] for _, r in found if r["suite"] == suite.name])
    feature_fps = dict(suite.dataset.get("feature_fingerprints", {}))
    all_keys = sorted({k for _, r in found for k in r["features"]})
    for k in all_keys:  # not pinned by the suite: the fingerprint most records agree on
        if k not in feature_fps:
            feature_fps[k] = _majority([r["features"][k] for _, r in found if k in r["features"]])
    finals: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    searches: dict[str, list[tuple[str, dict]]] = {}
    for rel, rec in found:
        why = _reject_reason(rec, suite, expected_fp, feature_fps)
        if why:
            rejected.append((rel, why))
            continue
        key = _entry_for(suite, rec).key
        if record_stage(rec) == "search":
            searches.setdefault(key, []).append((rel, rec))
        else:
            finals.setdefault((key, rec["model"]["params_hash"]), []).append((rel, rec))
    return finals, searches, rejected, failed, expected_fp


def search_choice(suite, entry, search_recs: list[tuple[str, dict]], claimed: set[str]) -> str | None:
    """The configuration the search records choose, or None when they cannot decide: a grid
    needs every configuration on every search seed; an Optuna search needs every candidate
    the final records list (``claimed``)."""
    by_hash: dict[str, dict[int, dict]] = {}
    for _, rec in search_recs:
        by_hash.setdefault(rec["model"]["params_hash"], {})[rec["seed"]] = rec
    if entry.method == "grid":
        if len(by_hash) < len(entry.configurations()):
            return None
    else:
        if not claimed or not claimed <= set(by_hash):
            return None
        by_hash = {h: v for h, v in by_hash.items() if h in claimed}
    cands, metric = [], suite.protocol.main_metric
    for h, per_seed in sorted(by_hash.items()):
        if set(per_seed) != set(suite.search_seeds):
            return None
        metric = next(iter(per_seed.values()))["selection"].get("metric", metric)
        vals = [per_seed[s]["metrics"]["valid"].get(metric) for s in sorted(per_seed)]
        cands.append({"params_hash": h, "valid": None if None in vals else round(sum(vals) / len(vals), 8)})
    best = choose(cands, metric)
    return best["params_hash"] if best else None
