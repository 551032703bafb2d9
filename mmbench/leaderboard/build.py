"""Leaderboards: a pure function of a suite and its run records.

``build(suite, results) -> Leaderboard``, the table model that :mod:`.text` and
:mod:`.html` render and :mod:`.files` writes or checks. Rebuilding from the same records
gives the same bytes (no clock, no absolute path, sorted everything, fixed float
formatting, seeded randomization tests). Which records count is :mod:`.select`'s job.

Statistics: mean ± sample std and a Student-t confidence interval over seeds; for every
metric with per-user values, each model is compared with the best one of the column by a
paired test on per-user values (averaged over seeds), Holm-corrected over the models.
Under rules 2 a rating metric is shown as the mean over users of each user's error, the
statistic the paired test compares (the records' RMSE/MAE over all rated pairs is another
quantity), and the board carries its compute, its records' manifest and the suite's
definition hash (:mod:`.integrity`, :mod:`mmbench.suite.tuning`), its parity records and the
reproduction status of each cell (:mod:`.references`).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluate.metrics import get, higher_is_better
from ..stats import TESTS, Comparison, Summary
from .integrity import compute, converged, manifest
from .robustness import has_cold, row_fields
from .select import Evidence, Found, identity, load_records, search_choice


@dataclass
class Row:
    key: str  # the suite entry (label, else model name)
    model: str
    label: str
    distribution: str
    version: str
    params: dict
    params_hash: str
    seeds: list[int]
    test: dict[str, Summary]
    valid: dict[str, Summary]
    fit_s: float
    eval_s: float
    epochs: float
    selection: dict
    records: list[str] = field(default_factory=list)
    unconverged: list[int] = field(default_factory=list)  # seeds whose run stopped at its epoch budget
    leaks: list[str] = field(default_factory=list)  # features it reads derived from interactions beyond train
    rank: int = 0
    marks: dict[str, Comparison] = field(default_factory=dict)  # metric -> comparison with the column's best
    best: set = field(default_factory=set)  # metrics where this row is the best
    per_user: dict = field(default_factory=dict, repr=False)  # metric -> (users, values averaged over seeds)
    references: dict = field(default_factory=dict)  # rules 2: metric -> [references.Reference]
    id_only: bool = False  # its records read no item content (marked on a board with /cold columns)
    robustness: dict = field(default_factory=dict)  # dropped name -> Summary per share (mmbench.leaderboard.robustness)
    missing: str = ""  # how the model treats a missing feature row (its robustness blocks say)
    robustness_note: str = ""  # why the row has no robustness curve


@dataclass
class Leaderboard:
    suite: str
    version: int
    main_metric: str
    metrics: list[str]  # accuracy columns, main first
    beyond: list[str]  # beyond-accuracy and cold-start / long-tail columns
    rows: list[Row]
    rejected: list[tuple[str, str]]
    failed: list[tuple[str, str]]
    protocol: dict
    protocol_hash: str
    dataset: dict
    environments: list[dict]
    identity: dict
    board: dict  # test, alpha, confidence
    main_tests: dict = field(default_factory=dict)  # row key -> {test: p, test+"_holm": p} on the main metric
    n_search: int = 0  # search records used to check selections
    rules: int = 1  # what the board proves (mmbench.suite.definition)
    fixed_budget: bool = False  # a fixed-budget track: unconverged cells are allowed (and marked)
    compute: dict = field(default_factory=dict)  # runs, compute_s (fit + eval), wall_s
    manifest: dict = field(default_factory=dict)  # rules 2: file under results -> sha256
    definition: dict = field(default_factory=dict)  # rules 2: what the suite version freezes
    definition_hash: str = ""
    superseded: list = field(default_factory=list)  # (version, rules) of the older v<M>/ folders, kept as built
    parity: list = field(default_factory=list)  # rules 2: the suite's parity records (mmbench.parity)
    references_note: str = ""  # rules 2: why the card's published results are not compared, when they are not
    cold: bool = False  # rules 2: a /cold column is shown (ID-only rows are marked)
    robustness: dict = field(default_factory=dict)  # the suite's [robustness] spec and the metric its view shows

    @property
    def columns(self) -> list[str]:
        return self.metrics + self.beyond

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)


def _summaries(recs: list[dict], split: str, confidence: float) -> dict[str, Summary]:
    from ..stats import summarize

    names = set(recs[0]["metrics"].get(split, {}))
    for r in recs[1:]:
        names &= set(r["metrics"].get(split, {}))
    return {m: summarize([r["metrics"][split][m] for r in recs], confidence) for m in sorted(names)}


def _per_user(loaded: list[dict], metrics: list[str]) -> dict:
    """metric -> (users, values averaged over the seeds' per-user arrays ``loaded``)."""
    from ..stats import per_user_mean

    out = {}
    for m in metrics:
        users_key = "rating_users" if get(m).kind == "rating" else "users"
        if not all(m in z and users_key in z for z in loaded):
            continue
        try:
            out[m] = per_user_mean([(z[users_key], z[m]) for z in loaded])
        except ValueError:
            continue
    return out


def build(suite, results: Path) -> Leaderboard:
    results = Path(results)
    main = suite.protocol.main_metric
    found = load_records(suite, results, Evidence.of(suite, results))
    rejected = found.rejected
    rows: list[Row] = []
    for entry in suite.models:
        configs = {h: g for (k, h), g in found.finals.items() if k == entry.key}
        if configs and entry.method != "fixed":
            rejected += _keep_search_choice(suite, entry, configs, found.searches.get(entry.key, []))
        if not configs:
            continue
        trained = _search_fit_s(found.searches.get(entry.key, []))
        candidates = [_row(entry, h, sorted(g, key=lambda x: x[1]["seed"]), suite, found.per_user, trained)
                      for h, g in sorted(configs.items())]
        rejected += _keep_best_valid(candidates, main)
        rows.append(candidates[0])
    sign = 1 if higher_is_better(main) else -1
    rows.sort(key=lambda r: (0 if main in r.test else 1, -sign * r.test[main].mean if main in r.test else 0, r.key))
    for i, r in enumerate(rows, 1):
        r.rank = i
    metrics, beyond = _columns(suite, rows)
    for r in rows:
        r.per_user = _per_user([found.per_user[rel] for rel in r.records], metrics + beyond)
    lb = Leaderboard(
        suite=suite.name, version=suite.version, main_metric=main, metrics=metrics, beyond=beyond, rows=rows,
        rejected=sorted(rejected), failed=sorted(found.failed), protocol=suite.protocol.as_dict(),
        protocol_hash=suite.protocol.hash, dataset=_dataset_info(suite, rows, found.finals, found.expected_fp),
        environments=_environments(found.finals, rows), identity=identity(suite), board=suite.board,
        n_search=sum(len(v) for v in found.searches.values()), rules=suite.rules, fixed_budget=suite.fixed_budget,
        cold=suite.rules >= 2 and has_cold(metrics + beyond),
        robustness={**suite.robustness.as_dict(), "metric": main} if suite.robustness else {})
    _account(lb, suite, results, found)
    _significance(lb)
    return lb


def _account(lb: Leaderboard, suite, results: Path, found: Found) -> None:
    """What the board used: its compute, the older versions it supersedes and, under rules 2,
    the manifest of its records and the suite's definition and hash."""
    keys = {r.key for r in lb.rows}
    finals = {rel: rec for g in found.finals.values() for rel, rec in g}
    used = [(rel, finals[rel]) for r in lb.rows for rel in r.records]
    used += [(rel, rec) for k, g in sorted(found.searches.items()) if k in keys for rel, rec in g]
    lb.compute = compute([rec for _, rec in used])
    lb.compute["search_runs"] = sum(1 for _, rec in used if rec["selection"].get("stage") == "search")
    lb.superseded = _older_versions(suite)
    if suite.rules < 2:
        return
    from ..io import hash_params
    from ..suite.tuning import definition

    lb.manifest = manifest(results, sorted(rel for rel, _ in used))
    lb.definition = definition(suite)
    lb.definition_hash = hash_params(lb.definition)
    from .parity import board_parity

    from .references import attach

    lb.parity, rejected = board_parity(suite, lb.dataset.get("fingerprint"))
    lb.rejected = sorted(lb.rejected + rejected)
    lb.references_note = attach(lb, suite)


def _older_versions(suite) -> list[tuple[int, int]]:
    """(version, rules) of the suite's committed ``v<M>/`` folders older than its version."""
    import json

    out = []
    for d in suite.folder.glob("v*/leaderboard.json"):
        v = d.parent.name[1:]
        if v.isdigit() and int(v) < suite.version:
            try:
                rules = json.loads(d.read_text(encoding="utf-8")).get("rules", 1)
            except (OSError, ValueError):
                rules = 1
            out.append((int(v), rules))
    return sorted(out)


def _keep_search_choice(suite, entry, configs: dict, search_recs: list) -> list[tuple[str, str]]:
    """Drop from ``configs`` the configurations the search records do not choose (when they
    can decide); returns the rejected records."""
    claimed = {c["params_hash"] for g in configs.values() for _, rec in g for c in rec["selection"].get("candidates", [])}
    chosen = search_choice(suite, entry, search_recs, claimed)
    rejected = []
    for h in sorted(configs):
        if chosen is not None and h != chosen:
            rejected += [(rel, f"superseded: the search records of {entry.key} now choose {chosen[:8]}, not "
                               f"{h[:8]}") for rel, _ in configs.pop(h)]
    return rejected


def _search_fit_s(searches: list) -> dict:
    """(params hash, seed) -> fit seconds of the entry's search records: what a final record
    that reuses a search run's training (``fit.reused``) cost to train."""
    out = {}
    for item in searches:
        rec = item[1] if isinstance(item, tuple) else item
        out[(rec["model"]["params_hash"], rec["seed"])] = rec["timing"].get("fit_s", 0.0)
    return out


def _fit_s(rec: dict, trained: dict) -> float:
    """The training time of the model a final record evaluates: its own, or (``fit.reused``)
    that of the search run it took the trained model from."""
    if (rec.get("fit") or {}).get("reused"):
        return trained.get((rec["model"]["params_hash"], rec["seed"]), rec["timing"].get("fit_s", 0.0))
    return rec["timing"].get("fit_s", 0.0)


def _row(entry, params_hash: str, group: list[tuple[str, dict]], suite, per_user: dict,
         trained: dict | None = None) -> Row:
    """The row of one configuration from its records (sorted by seed); ``trained``: the fit
    seconds of the entry's search runs (:func:`_search_fit_s`)."""
    recs = [r for _, r in group]
    model = recs[0]["model"]
    confidence = suite.board["confidence"]
    test = _summaries(recs, "test", confidence)
    if suite.rules >= 2:  # a rating metric: the mean over users, as the paired test sees it
        for m in [m for m in test if get(m).kind == "rating"]:
            test[m] = _user_mean_summary([per_user[rel][m] for rel, _ in group], confidence)
    return Row(
        key=entry.key, model=model["name"], label=entry.key, distribution=model["distribution"],
        version=model["version"], params=model["params"], params_hash=params_hash,
        seeds=[r["seed"] for r in recs], test=test, valid=_summaries(recs, "valid", confidence),
        fit_s=float(np.mean([_fit_s(r, trained or {}) for r in recs])),
        eval_s=float(np.mean([r["timing"].get("eval_s", 0.0) for r in recs])),
        epochs=float(np.mean([(r.get("fit") or {}).get("best_epoch") or 0 for r in recs])),
        selection=recs[0]["selection"], records=[rel for rel, _ in group],
        unconverged=[r["seed"] for r in recs if converged(r) is False] if suite.rules >= 2 else [],
        leaks=sorted({k for r in recs for k in r["features_leak"]}) if suite.rules >= 2 else [],
        id_only=not any(r.get("features") for r in recs),
        **(row_fields(recs, suite.robustness, suite.protocol.main_metric, confidence) if suite.robustness else {}))


def _user_mean_summary(vectors: list, confidence: float) -> Summary:
    from ..stats import summarize

    return summarize([float(np.nanmean(np.asarray(v, dtype=np.float64))) for v in vectors], confidence)


def _keep_best_valid(candidates: list[Row], sel: str) -> list[tuple[str, str]]:
    """Several configurations of one entry without a search to decide: the best validation
    value of ``sel`` goes first; returns the others' records as rejected."""
    if len(candidates) < 2:
        return []
    sign = 1 if higher_is_better(sel) else -1
    candidates.sort(key=lambda r: (-sign * r.valid[sel].mean if sel in r.valid else math.inf, r.params_hash))
    return [(rel, f"not chosen: {candidates[0].key} config {candidates[0].params_hash[:8]} has the better "
                  f"validation {sel}") for r in candidates[1:] for rel in r.records]


def _columns(suite, rows: list[Row]) -> tuple[list[str], list[str]]:
    main = suite.protocol.main_metric
    present = set().union(*(r.test for r in rows)) if rows else set()
    metrics = [main] + [m for m in suite.protocol.metrics if m != main and "/" not in m]
    if get(main).kind == "rating":  # rating track: every rating metric; a ranking track shows them in the JSON only
        metrics += [m for m in suite.protocol.rating_metrics if m in present and m not in metrics]
    beyond = sorted(m for m in present if get(m).kind == "beyond-accuracy")
    beyond += [m for m in suite.protocol.metrics if "/" in m and m != main]
    return metrics, beyond


def _dataset_info(suite, rows, finals, expected_fp) -> dict:
    first = None
    for r in rows:
        first = next((rec for (k, h), g in finals.items() if k == r.key and h == r.params_hash for _, rec in g), None)
        if first:
            break
    if first is None:
        return {"name": suite.dataset["name"], "version": suite.dataset["version"], "fingerprint": expected_fp}
    ds = first["dataset"]
    return {k: ds[k] for k in ("name", "version", "fingerprint", "filters", "split", "stats", "source") if k in ds}


def _environments(finals, rows) -> list[dict]:
    used = {(r.key, r.params_hash) for r in rows}
    counts: Counter = Counter()
    for k, g in finals.items():
        if k not in used:
            continue
        for _, rec in g:
            e = rec["env"]
            git = e.get("git") or {}
            sha = (git.get("sha") or "unknown")[:10] + ("+dirty" if git.get("dirty") else "")
            counts[(e.get("mmbench", "?"), sha, e.get("python", "?"), e.get("torch", "?"), e.get("device", "?"),
                    str(e.get("threads", "?")), e.get("platform", "?"))] += 1
    keys = ("mmbench", "git", "python", "torch", "device", "threads", "platform")
    return [dict(zip(keys, env)) | {"records": n} for env, n in sorted(counts.items())]


def _significance(lb: Leaderboard) -> None:
    """Marks: each row against the best row of every column with per-user values; for the
    main metric, all three tests."""
    from ..stats import against_best

    test, alpha = lb.board["test"], lb.board["alpha"]
    for m in lb.columns:
        have = [r for r in lb.rows if m in r.test]
        if not have:
            continue
        sign = 1 if higher_is_better(m) else -1
        best = min(have, key=lambda r: (-sign * r.test[m].mean, r.rank))
        best.best.add(m)
        vec = {r.key: r.per_user[m][1] for r in have if m in r.per_user}
        if best.key not in vec or len(vec) < 2:
            continue
        users = best.per_user[m][0]
        vec = {k: v for k, v in vec.items() if np.array_equal(lb.row(k).per_user[m][0], users)}
        for k, c in against_best(vec, best.key, test, alpha).items():
            lb.row(k).marks[m] = c
        if m == lb.main_metric:
            for t in TESTS:
                for k, c in against_best(vec, best.key, t, alpha).items():
                    lb.main_tests.setdefault(k, {})[t] = c.p
                    lb.main_tests[k][t + "_holm"] = c.p_holm

