"""Which records a leaderboard uses: those that fit the suite and hold up as evidence
(:mod:`.integrity`), and for a searched model the final records of the configuration its
search records choose.

Records whose dataset fingerprint, features, protocol, seed or selection do not fit the
suite are rejected with a reason, never averaged; a record belongs to the entry of its
model, parameters and feature keys (an entry's own keys are recorded as
``selection.features``); failed runs never enter the table. A record chosen with anything
but the validation split is rejected. Where the suite pins no fingerprint, the records must
agree on one: a disagreement is an error, never a vote.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RecordError
from ..records import RECORD_NAME, dirty_reason, iter_records, record_stage
from ..suite.plan import choose
from .integrity import claimed_search_reason, manifest_reason, per_user_file, recompute_reason


def identity(suite) -> dict:
    """What may not change within one version of a leaderboard."""
    ds = suite.dataset
    return {"dataset": {"name": ds["name"], "version": ds["version"], "fingerprint": ds.get("fingerprint")},
            "features": sorted(ds.get("features", [])) if "features" in ds else None,
            "feature_fingerprints": dict(sorted(ds.get("feature_fingerprints", {}).items())),
            "protocol_hash": suite.protocol.hash}


def committed_board(suite) -> dict | None:
    """The committed ``v<N>/leaderboard.json`` of the suite's version, if there is one."""
    p = suite.folder / f"v{suite.version}" / "leaderboard.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Evidence:
    """What records are checked against beyond the suite: the rules, whether the board is
    built from the records kept with the suite (a committed board) and its manifest."""

    rules: int
    committed: bool = False
    manifest: dict = field(default_factory=dict)

    @classmethod
    def of(cls, suite, results: Path) -> Evidence:
        committed = suite.keeps_records and Path(results).resolve() == suite.results_dir().resolve()
        board = committed_board(suite) if committed and suite.rules >= 2 else None
        return cls(suite.rules, committed, dict((board or {}).get("manifest", {})))


@dataclass
class Found:
    """The records of a suite, sorted: accepted finals by (entry key, params hash), accepted
    search records by entry, rejected and failed ones with their reasons, the per-user
    arrays of the accepted finals."""

    finals: dict = field(default_factory=dict)
    searches: dict = field(default_factory=dict)
    rejected: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    per_user: dict = field(default_factory=dict)
    expected_fp: str | None = None


def _agreed(values: list[str], what: str, where: str, hint: str) -> str | None:
    """The value every record has (None: no record); records that disagree are an error."""
    counts = Counter(values)
    if len(counts) > 1:
        shown = ", ".join(f"{n} with {v[:12]}" for v, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
        raise RecordError(f"records disagree on the {what} ({shown}): which is right is not a vote", where=where,
                          hint=hint)
    return next(iter(counts), None)


def _entry_for(suite, rec: dict):
    """The suite entry the record belongs to: same model, parameters it can come from and
    feature keys (an entry's own, recorded as ``selection.features``, or none). Where a
    suite lists a model more than once with the same keys (e.g. ``missing = "impute"``
    beside the default), a parameter one entry pins and another leaves to the model must
    hold the model's declared default for the latter: :func:`_unpinned_defaults`."""
    name, given, params = rec["model"]["name"], rec["selection"].get("features"), rec["model"]["params"]
    found = [m for m in suite.models if m.name == name and m.features == given and m.matches(params)]
    if len(found) > 1:
        pinned = sorted({k for m in found for k in m.params})
        defaults = _unpinned_defaults(name, pinned)
        found = [m for m in found if all(params.get(k) == m.params.get(k, defaults.get(k)) for k in pinned)]
    return found[0] if found else None


def _unpinned_defaults(model: str, keys: list[str]) -> dict:
    """The declared defaults of ``keys`` of ``model`` (those it declares)."""
    from ..runner import ModelSpec

    declared = ModelSpec.resolve(model).params({})
    return {k: declared[k] for k in keys if k in declared}


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
        given = rec["selection"].get("features")
        feats = "" if given is None else f" and features {given}"
        return (f"model {rec['model']['name']!r} with these parameters{feats} is not in the suite "
                f"(params {rec['model']['params_hash'][:8]})")
    sel = rec["selection"]
    if record_stage(rec) == "final" and entry.method != "fixed":
        if sel.get("method") != entry.method or sel.get("chosen") != rec["model"]["params_hash"]:
            return (f"{entry.key} is chosen by a {entry.method} search in this suite, but this record was not "
                    "the search's choice")
    return None


def _pinned(suite, found: list[tuple[str, dict]], where: str) -> tuple[str | None, dict]:
    """The dataset fingerprint and feature fingerprints records must have: the suite's, or
    the one all of its records agree on."""
    mine = [r for _, r in found if r["suite"] == suite.name]
    fp = suite.dataset.get("fingerprint") or _agreed(
        [r["dataset"]["fingerprint"] for r in mine], "dataset fingerprint", where,
        "pin [dataset] fingerprint in suite.toml; records with another one are then rejected")
    feature_fps = dict(suite.dataset.get("feature_fingerprints", {}))
    for k in sorted({k for r in mine for k in r["features"]} - set(feature_fps)):
        feature_fps[k] = _agreed([r["features"][k] for r in mine if k in r["features"]], f"fingerprint of {k}", where,
                                 "pin it in [dataset.feature_fingerprints] of suite.toml")
    return fp, feature_fps


def _evidence_reason(results: Path, rel: str, rec: dict, evidence: Evidence, out: Found) -> str | None:
    """Why a record that fits the suite is not believed (None: it is); keeps a final
    record's per-user arrays in ``out``."""
    if evidence.manifest and (why := manifest_reason(results, rel, evidence.manifest)):
        return why
    if evidence.rules >= 2 and evidence.committed and (why := dirty_reason(rec)):
        return why
    if record_stage(rec) == "search":
        return None
    if evidence.rules >= 2 and "features_leak" not in rec:
        return "made before feature provenance was recorded (no features_leak): rerun it"
    arrays, why = per_user_file(results, rel)
    if why is None and not (why := recompute_reason(rec, arrays)):
        out.per_user[rel] = arrays
    return why


def load_records(suite, results: Path, evidence: Evidence | None = None) -> Found:
    """The suite's records under ``results``, sorted into a :class:`Found`."""
    evidence = evidence or Evidence(suite.rules)
    out, found = Found(), []
    for path, rec in iter_records(results, suite.name):
        rel = path.relative_to(results).as_posix()
        if isinstance(rec, Exception):
            out.rejected.append((rel, f"invalid record: {rec}"))
        elif rec["status"] != "ok":
            out.failed.append((rel, rec.get("error", "")))
        else:
            found.append((rel, rec))
    out.expected_fp, feature_fps = _pinned(suite, found, str(results / suite.name))
    for rel, rec in found:
        why = (_reject_reason(rec, suite, out.expected_fp, feature_fps)
               or _evidence_reason(results, rel, rec, evidence, out))
        if why:
            out.rejected.append((rel, why))
        elif record_stage(rec) == "search":
            out.searches.setdefault(_entry_for(suite, rec).key, []).append((rel, rec))
        else:
            out.finals.setdefault((_entry_for(suite, rec).key, rec["model"]["params_hash"]), []).append((rel, rec))
    _keep_claimed(out)
    out.rejected += [(key, "listed in the committed board's manifest, but the file is gone")
                     for key in evidence.manifest if RECORD_NAME.fullmatch(Path(key).name)
                     and not (results / key).exists()]
    return out


def _keep_claimed(out: Found) -> None:
    """Reject the final records whose selection is not backed by the accepted search records
    (of the same feature keys)."""
    by_run: dict = {}
    for g in out.searches.values():
        for _, rec in g:
            runs = by_run.setdefault(_feature_set(rec), {})
            runs[(rec["model"]["params_hash"], rec["seed"])] = rec
    for key in list(out.finals):
        keep = []
        for rel, rec in out.finals[key]:
            why = claimed_search_reason(rec, by_run.get(_feature_set(rec), {}))
            if why:
                out.rejected.append((rel, why))
            else:
                keep.append((rel, rec))
        if keep:
            out.finals[key] = keep
        else:
            del out.finals[key]


def _feature_set(rec: dict) -> tuple | None:
    """The record's ``selection.features`` as a dict key (None: the suite's features)."""
    given = rec["selection"].get("features")
    return None if given is None else tuple(given)


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
