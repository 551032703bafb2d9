"""Leaderboards: a pure function of a suite and its run records.

``build(suite, results) -> Leaderboard``; :func:`render` gives the files of
``leaderboards/<suite>/v<N>/`` (README.md, leaderboard.csv, leaderboard.json, index.html)
and :func:`write` writes them. Rebuilding from the same records gives the same bytes (no
clock, no absolute path, sorted everything, fixed float formatting, seeded randomization
tests).

Records whose dataset fingerprint, features, protocol, seed or selection do not fit the
suite are rejected with a reason, never averaged; failed runs never enter the table. A
record chosen with anything but the validation split is rejected. For a searched model
(grid or Optuna), only the final records of the configuration that the search records
choose are used.

Statistics: mean ± sample std and a Student-t confidence interval over seeds; for every
metric with per-user values, each model is compared with the best one of the column by a
paired test on per-user values (averaged over seeds), Holm-corrected over the models.
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .io import atomic_write_text, canonical_json
from .records import iter_records, record_stage
from .stats import TESTS, Comparison, Summary

FILES = ("README.md", "leaderboard.csv", "leaderboard.json", "index.html")
BEYOND = ("coverage", "gini", "novelty")  # beyond-accuracy metrics the evaluation adds
MARK = "†"  # significantly worse than the best of the column


def higher_is_better(metric: str) -> bool:
    from .evaluate.metrics import higher_is_better as hib

    base = metric.split("/", 1)[0]
    name = base.split("@", 1)[0]
    if name in BEYOND:
        return name != "gini"  # an even spread of recommendations is better
    return hib(base)


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
    rank: int = 0
    marks: dict[str, Comparison] = field(default_factory=dict)  # metric -> comparison with the column's best
    best: set = field(default_factory=set)  # metrics where this row is the best
    per_user: dict = field(default_factory=dict, repr=False)  # metric -> (users, values averaged over seeds)


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

    @property
    def columns(self) -> list[str]:
        return self.metrics + self.beyond

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)


# -- selecting the records ------------------------------------------------------------------------
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
    from .suite import recorded_name

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


def _load_records(suite, results: Path):
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


def _search_choice(suite, entry, search_recs: list[tuple[str, dict]], claimed: set[str]) -> str | None:
    """The configuration the search records choose, or None when they cannot decide: a grid
    needs every configuration on every search seed; an Optuna search needs every candidate
    the final records list (``claimed``)."""
    from .suite import choose

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


def _summaries(recs: list[dict], split: str, confidence: float) -> dict[str, Summary]:
    from .stats import summarize

    names = set(recs[0]["metrics"].get(split, {}))
    for r in recs[1:]:
        names &= set(r["metrics"].get(split, {}))
    return {m: summarize([r["metrics"][split][m] for r in recs], confidence) for m in sorted(names)}


def _per_user(results: Path, rels: list[str], metrics: list[str]) -> dict:
    from .records import read_per_user
    from .stats import per_user_mean

    loaded = []
    for rel in rels:
        try:
            loaded.append(read_per_user(results / rel))
        except Exception:  # noqa: BLE001 - no per-user file: no significance test for this row
            return {}
    out = {}
    for m in metrics:
        users_key = "rating_users" if m in ("rmse", "mae") else "users"
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
    board = suite.board
    finals, searches, rejected, failed, expected_fp = _load_records(suite, results)
    rows: list[Row] = []
    for entry in suite.models:
        configs = {h: g for (k, h), g in finals.items() if k == entry.key}
        if not configs:
            continue
        if entry.method != "fixed":
            claimed = {c["params_hash"] for g in configs.values() for _, rec in g
                       for c in rec["selection"].get("candidates", [])}
            chosen = _search_choice(suite, entry, searches.get(entry.key, []), claimed)
            if chosen is not None:
                for h in sorted(configs):
                    if h != chosen:
                        rejected += [(rel, f"superseded: the search records of {entry.key} now choose "
                                           f"{chosen[:8]}, not {h[:8]}") for rel, _ in configs.pop(h)]
        candidates = []
        for h, g in sorted(configs.items()):
            g = sorted(g, key=lambda x: x[1]["seed"])
            recs = [r for _, r in g]
            candidates.append(Row(
                key=entry.key, model=recs[0]["model"]["name"], label=entry.key, distribution=recs[0]["model"]["distribution"],
                version=recs[0]["model"]["version"], params=recs[0]["model"]["params"], params_hash=h,
                seeds=[r["seed"] for r in recs], test=_summaries(recs, "test", board["confidence"]),
                valid=_summaries(recs, "valid", board["confidence"]),
                fit_s=float(np.mean([r["timing"].get("fit_s", 0.0) for r in recs])),
                eval_s=float(np.mean([r["timing"].get("eval_s", 0.0) for r in recs])),
                epochs=float(np.mean([(r.get("fit") or {}).get("best_epoch") or 0 for r in recs])),
                selection=recs[0]["selection"], records=[rel for rel, _ in g]))
        if len(candidates) > 1:  # several configurations without a search to decide: validation decides
            sel = suite.protocol.main_metric
            sign = 1 if higher_is_better(sel) else -1
            candidates.sort(key=lambda r: (-sign * r.valid[sel].mean if sel in r.valid else math.inf,
                                           r.params_hash))
            for r in candidates[1:]:
                rejected += [(rel, f"not chosen: {entry.key} config {candidates[0].params_hash[:8]} has the "
                                   f"better validation {sel}") for rel in r.records]
        rows.append(candidates[0])
    sign = 1 if higher_is_better(main) else -1
    rows.sort(key=lambda r: (0 if main in r.test else 1, -sign * r.test[main].mean if main in r.test else 0, r.key))
    for i, r in enumerate(rows, 1):
        r.rank = i
    metrics, beyond = _columns(suite, rows)
    for r in rows:
        r.per_user = _per_user(results, r.records, metrics + beyond)
    lb = Leaderboard(
        suite=suite.name, version=suite.version, main_metric=main, metrics=metrics, beyond=beyond, rows=rows,
        rejected=sorted(rejected), failed=sorted(failed), protocol=suite.protocol.as_dict(),
        protocol_hash=suite.protocol.hash, dataset=_dataset_info(suite, rows, finals, expected_fp),
        environments=_environments(finals, rows), identity=identity(suite), board=board,
        n_search=sum(len(v) for v in searches.values()))
    _significance(lb)
    return lb


def _columns(suite, rows: list[Row]) -> tuple[list[str], list[str]]:
    main = suite.protocol.main_metric
    present = set().union(*(r.test for r in rows)) if rows else set()
    metrics = [main] + [m for m in suite.protocol.metrics if m != main and "/" not in m]
    if "@" not in main:  # rating track: every rating metric; a ranking track shows them in the JSON only
        metrics += [m for m in suite.protocol.rating_metrics if m in present and m not in metrics]
    beyond = sorted(m for m in present if m.split("@", 1)[0] in BEYOND)
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
    from .stats import against_best

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


# -- rendering ------------------------------------------------------------------------------------
def fmt_cell(row: Row, metric: str, *, markdown: bool = True) -> str:
    s = row.test.get(metric)
    if s is None:
        return "-"
    text = f"{s.mean:.4f} ± {s.std:.4f}"
    if metric in row.best and markdown:
        text = f"**{text}**"
    c = row.marks.get(metric)
    if c is not None and c.significant:
        text += MARK
    return text


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _short_params(params: dict) -> str:
    return ", ".join(f"{k}={params[k]}" for k in sorted(params)) or "-"


def _seeds(lb: Leaderboard, r: Row, suite) -> str:
    return f"{len(r.seeds)}" if len(r.seeds) == len(suite.seeds) else f"{len(r.seeds)}/{len(suite.seeds)}"


def test_name(test: str) -> str:
    return {"t-test": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test",
            "fisher": "Fisher randomization test (10,000 sign flips)"}[test]


def legend(lb: Leaderboard) -> str:
    return (f"Bold: best of the column. {MARK}: significantly worse than the best of the column "
            f"({test_name(lb.board['test'])} on per-user values averaged over seeds, Holm-corrected over the "
            f"models, α = {lb.board['alpha']:g}).")


def to_markdown(lb: Leaderboard, suite) -> str:
    from tabulate import tabulate

    def table(headers, body):
        return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)

    ds = lb.dataset
    lines = [f"# Leaderboard: {lb.suite} v{lb.version}", ""]
    desc = suite.data["suite"].get("description")
    if desc:
        lines += [desc.strip(), ""]
    st = ds.get("stats", {})
    lines += [
        f"Dataset **{ds.get('name')}** v{ds.get('version')}, fingerprint `{str(ds.get('fingerprint') or '-')[:16]}`"
        + (f", {st['users']} users, {st['items']} items, {st['interactions']} interactions" if st else "") + ".",
        f"Test metrics, mean ± sample std over seeds, sorted by **{lb.main_metric}**. "
        "Hyper-parameters and early stopping are chosen on the validation split only. " + legend(lb),
        "",
    ]
    if not lb.rows:
        lines += ["No accepted records yet.", ""]
    else:
        headers = ["Rank", "Model"] + [f"**{m}**" if m == lb.main_metric else m for m in lb.metrics] + [
            "Fit (s)", "Seeds"]
        body = [[r.rank, r.label] + [fmt_cell(r, m) for m in lb.metrics] + [f"{r.fit_s:.1f}", _seeds(lb, r, suite)]
                for r in lb.rows]
        lines += [table(headers, body), ""]
        if lb.beyond:
            lines += ["## Beyond accuracy, cold-start and long tail", "",
                      "Coverage: share of items in some top-k list; Gini: concentration of the recommendations "
                      "(lower is more even); novelty: mean self-information −log2(popularity) of recommended items; "
                      "`/cold`: restricted to items without training interactions; `/tail`: restricted to items "
                      "outside the top 20% by training popularity (users without such a test item left out).", ""]
            body = [[r.rank, r.label] + [fmt_cell(r, m) for m in lb.beyond] for r in lb.rows]
            lines += [table(["Rank", "Model"] + lb.beyond, body), ""]
        lines += _stats_section(lb)
        lines += _selection_section(lb, suite)
    p = lb.protocol
    lines += [
        "## Protocol", "",
        f"- Split: `{canonical_json(ds.get('split', {}), indent=None).strip()}`; "
        f"filters: `{canonical_json(ds.get('filters', {}), indent=None).strip()}`",
        f"- Candidates: {p['candidates']} items (full ranking, never sampled); "
        f"masked at test: train{' + valid' if p['mask_valid_at_test'] else ''} items",
        f"- Fit on {p['fit_on']}; selection and early stopping on {p['selection']}; "
        f"searched models: candidates on seed(s) {suite.search_seeds}, the chosen one on seeds {suite.seeds}",
        f"- Protocol hash `{lb.protocol_hash}`; a protocol change makes a new leaderboard version",
        "",
        "## Configurations", "",
    ]
    for r in lb.rows:
        lines.append(f"- **{r.label}** (`{r.model}` from {r.distribution} {r.version}), params `{r.params_hash[:8]}`: "
                     f"{_short_params(r.params)}")
    lines += ["", "## Environment", ""]
    if lb.environments:
        keys = ["mmbench", "git", "python", "torch", "device", "threads", "platform", "records"]
        lines += [table(keys, [[str(e[k]) for k in keys] for e in lb.environments]), ""]
    if lb.rejected or lb.failed:
        lines += ["## Excluded records", ""]
        lines += [f"- rejected `{p}`: {why}" for p, why in lb.rejected]
        lines += [f"- failed `{p}`: {why}" for p, why in lb.failed]
        lines += [""]
    folder = f"leaderboards/{suite.folder.name}"
    lines += ["## Reproduce", "", "```",
              f"mmbench suite run {folder}        # runs what is missing; existing records are skipped",
              f"mmbench leaderboard build {folder}",
              f"mmbench leaderboard check {folder}  # rebuild and compare bytes with v{lb.version}/",
              "```", "",
              "Files: `leaderboard.csv`, `leaderboard.json` (every number, with confidence intervals and "
              "p-values), `index.html` (open it in a browser: sortable table and charts, no network).", ""]
    return "\n".join(lines)


def _stats_section(lb: Leaderboard) -> list[str]:
    from tabulate import tabulate

    m = lb.main_metric
    if not any(m in r.test for r in lb.rows):
        return []
    conf = int(round(lb.board["confidence"] * 100))
    headers = ["Model", f"{m} mean", "std", f"{conf}% CI", "n"] + [f"p {t}" for t in TESTS] + [
        f"p Holm ({lb.board['test']})"]
    body = []
    for r in lb.rows:
        s = r.test.get(m)
        if s is None:
            continue
        ps = lb.main_tests.get(r.key, {})
        best = m in r.best
        body.append([r.label + (" (best)" if best else ""), f"{s.mean:.4f}", f"{s.std:.4f}",
                     f"[{s.ci_low:.4f}, {s.ci_high:.4f}]", str(s.n)]
                    + [("-" if best else fmt_p(ps.get(t))) for t in TESTS]
                    + ["-" if best else fmt_p(ps.get(lb.board["test"] + "_holm"))])
    return [f"## Statistics of {m}", "",
            f"Student-t {conf}% confidence interval of the mean over seeds; two-sided p-values of each model "
            "against the best on per-user values (averaged over seeds).", "",
            tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]


def _selection_section(lb: Leaderboard, suite) -> list[str]:
    from tabulate import tabulate

    out = []
    for r in lb.rows:
        sel = r.selection
        if sel.get("method") in (None, "fixed"):
            continue
        metric = sel.get("metric", lb.main_metric)
        cands = sel.get("candidates", [])
        keys = sorted({k for c in cands for k in c.get("params", {})})
        body = [[("**" + c["params_hash"][:8] + "**") if c["params_hash"] == sel.get("chosen") else c["params_hash"][:8]]
                + [str(c.get("params", {}).get(k, "")) for k in keys]
                + ["failed" if c.get("valid") is None else f"{c['valid']:.4f}"] for c in cands]
        out += [f"### {r.label}: {sel['method']} search, {len(cands)} candidates, valid {metric} on seed(s) "
                f"{sel.get('seeds')}", "",
                tabulate(body, headers=["params"] + keys + [f"valid {metric}"], tablefmt="github",
                         disable_numparse=True), ""]
    if out:
        out = ["## Model selection", "", "Chosen configuration in bold: the best mean validation value; "
               "the test split was evaluated for the chosen configuration only.", ""] + out
    return out


def to_csv(lb: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    stats = ("mean", "std", "ci_low", "ci_high", "p_holm")
    w.writerow(["rank", "model", "registered_name", "distribution", "version", "params_hash", "n_seeds"] +
               [f"{c}_{s}" for c in lb.columns for s in stats] + ["fit_s", "best_epoch"])
    for r in lb.rows:
        vals = []
        for c in lb.columns:
            s = r.test.get(c)
            if s is None:
                vals += [""] * len(stats)
                continue
            cmp_ = r.marks.get(c)
            vals += [f"{s.mean:.6f}", f"{s.std:.6f}", f"{s.ci_low:.6f}", f"{s.ci_high:.6f}",
                     f"{cmp_.p_holm:.6g}" if cmp_ else ""]
        w.writerow([r.rank, r.label, r.model, r.distribution, r.version, r.params_hash[:8], len(r.seeds)] + vals +
                   [f"{r.fit_s:.3f}", f"{r.epochs:.1f}"])
    return buf.getvalue()


def _r(x: float, nd: int = 8) -> float:
    return float(round(x, nd))


def to_json(lb: Leaderboard) -> str:
    def summ(d: dict[str, Summary]) -> dict:
        return {k: {"mean": _r(s.mean), "std": _r(s.std), "ci_low": _r(s.ci_low), "ci_high": _r(s.ci_high),
                    "n": s.n} for k, s in sorted(d.items())}

    def marks(r: Row) -> dict:
        return {m: {"p": _r(c.p, 10), "p_holm": _r(c.p_holm, 10), "significant": c.significant}
                for m, c in sorted(r.marks.items())}

    obj = {
        "schema": "mmbench.leaderboard/2",
        "suite": lb.suite, "version": lb.version, "main_metric": lb.main_metric,
        "columns": {"accuracy": lb.metrics, "beyond": lb.beyond},
        "identity": lb.identity, "dataset": lb.dataset, "protocol": lb.protocol, "protocol_hash": lb.protocol_hash,
        "significance": {"test": lb.board["test"], "alpha": lb.board["alpha"], "correction": "holm",
                         "against": "best of each column", "confidence": lb.board["confidence"]},
        "rows": [{"rank": r.rank, "model": r.label, "registered_name": r.model, "distribution": r.distribution,
                  "version": r.version, "params": r.params, "params_hash": r.params_hash, "seeds": r.seeds,
                  "selection": r.selection, "test": summ(r.test), "valid": summ(r.valid),
                  "best_in": sorted(r.best), "versus_best": marks(r),
                  "main_metric_tests": {k: _r(v, 10) for k, v in sorted(lb.main_tests.get(r.key, {}).items())},
                  "fit_s": _r(r.fit_s, 3), "eval_s": _r(r.eval_s, 3), "best_epoch": _r(r.epochs, 2),
                  "records": r.records} for r in lb.rows],
        "rejected": [{"record": p, "reason": w} for p, w in lb.rejected],
        "failed": [{"record": p, "reason": w} for p, w in lb.failed],
        "environments": lb.environments,
        "search_records": lb.n_search,
    }
    return canonical_json(obj)


def render(lb: Leaderboard, suite) -> dict[str, str]:
    """Every file of ``v<N>/`` as text (what :func:`write` writes and ``check`` compares)."""
    from .html import to_html

    return {"README.md": to_markdown(lb, suite), "leaderboard.csv": to_csv(lb), "leaderboard.json": to_json(lb),
            "index.html": to_html(lb, suite)}


def version_dir(suite, out_dir: Path | None = None) -> Path:
    return Path(out_dir) if out_dir else suite.folder / f"v{suite.version}"


def check_frozen(suite, out: Path) -> None:
    """A version is frozen to its protocol: rebuilding v<N> under another protocol, dataset or
    feature set is refused (old versions stay as they were)."""
    import json

    p = out / "leaderboard.json"
    if not p.is_file():
        return
    try:
        old = json.loads(p.read_text(encoding="utf-8")).get("identity")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    if old is None:
        return
    new = identity(suite)
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ConfigError(f"v{suite.version} was built under a different {', '.join(diff)}; old versions stay "
                          "frozen", where=str(suite.path),
                          hint=f"set [suite] version = {suite.version + 1} to start a new leaderboard version")


def write(lb: Leaderboard, suite, out_dir: Path | None = None) -> Path:
    out = version_dir(suite, out_dir)
    check_frozen(suite, out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render(lb, suite).items():
        atomic_write_text(out / name, text)
    return out


def check(lb: Leaderboard, suite, out_dir: Path | None = None) -> list[str]:
    """Differences between a fresh build and the files in ``v<N>/`` (empty: identical bytes)."""
    out = version_dir(suite, out_dir)
    problems = []
    for name, text in render(lb, suite).items():
        p = out / name
        if not p.is_file():
            problems.append(f"{name}: missing")
            continue
        old = p.read_bytes()
        new = text.encode("utf-8")
        if old != new:
            a, b = old.decode("utf-8", "replace").split("\n"), text.split("\n")
            line = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.append(f"{name}: differs from a rebuild at line {line + 1}")
    return problems
