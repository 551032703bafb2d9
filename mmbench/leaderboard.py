"""Leaderboards: a pure function of a suite and its run records.

``build(suite, records) -> Leaderboard``; ``write(...)`` renders Markdown, CSV and JSON
into ``leaderboards/<suite>/v<N>/``. Rebuilding from the same records gives the same bytes
(no clock, sorted everything, fixed float formatting). Records whose dataset fingerprint
or protocol differ from the suite's are rejected with a reason, never averaged; failed
runs never enter the table.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import atomic_write_text, canonical_json
from .records import iter_records
from .evaluate.metrics import higher_is_better


@dataclass
class Row:
    model: str
    label: str
    distribution: str
    version: str
    params: dict
    params_hash: str
    seeds: list[int]
    test: dict[str, tuple[float, float]]  # metric -> (mean, std)
    valid: dict[str, tuple[float, float]]
    fit_s: float
    epochs: float
    records: list[str] = field(default_factory=list)
    rank: int = 0


@dataclass
class Leaderboard:
    suite: str
    version: int
    main_metric: str
    metrics: list[str]
    rows: list[Row]
    rejected: list[tuple[str, str]]
    failed: list[tuple[str, str]]
    protocol: dict
    dataset: dict
    environments: list[str]


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _reject_reason(rec: dict, suite, expected_fp: str | None) -> str | None:
    if rec["suite"] != suite.name:
        return f"suite {rec['suite']!r} is not {suite.name!r}"
    ds = rec["dataset"]
    if ds["name"] != suite.dataset["name"] or str(ds.get("version")) != suite.dataset["version"]:
        return f"dataset {ds['name']}@{ds.get('version')} is not {suite.dataset['name']}@{suite.dataset['version']}"
    if expected_fp and ds["fingerprint"] != expected_fp:
        return f"dataset fingerprint {ds['fingerprint'][:12]} differs from the suite's {expected_fp[:12]}"
    if rec["protocol_hash"] != suite.protocol.hash:
        return f"protocol {rec['protocol_hash']} differs from the suite's {suite.protocol.hash}"
    if rec.get("selection", {}).get("on") != "valid":
        return "selected on something other than the validation split"
    want_feats = suite.dataset.get("features")
    if want_feats is not None and not set(rec["features"]) <= set(want_feats):
        return f"uses features {sorted(rec['features'])} outside the suite's {sorted(want_feats)}"
    return None


def build(suite, results: Path) -> Leaderboard:
    main = suite.protocol.main_metric
    expected_fp = suite.dataset.get("fingerprint")
    rejected, failed = [], []
    groups: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    entries = {m.name: m for m in suite.models}
    for path, rec in iter_records(results, suite.name):
        rel = path.relative_to(results).as_posix()
        if isinstance(rec, Exception):
            rejected.append((rel, f"invalid record: {rec}"))
            continue
        if rec["status"] != "ok":
            failed.append((rel, rec.get("error", "")))
            continue
        if rec["model"]["name"] not in entries:
            rejected.append((rel, f"model {rec['model']['name']!r} is not in the suite"))
            continue
        why = _reject_reason(rec, suite, expected_fp)
        if why:
            rejected.append((rel, why))
            continue
        if rec["seed"] not in suite.seeds:
            rejected.append((rel, f"seed {rec['seed']} is not one of the suite's seeds {suite.seeds}"))
            continue
        groups.setdefault((rec["model"]["name"], rec["model"]["params_hash"]), []).append((rel, rec))
    metrics = list(suite.protocol.metrics)
    rows = []
    for name, entry in entries.items():
        configs = [(h, g) for (n, h), g in groups.items() if n == name]
        if not configs:
            continue
        candidates = []
        for h, g in configs:
            recs = [r for _, r in sorted(g, key=lambda x: x[1]["seed"])]
            extra = [k for k in suite.protocol.rating_metrics if k in recs[0]["metrics"]["test"]]
            mets = metrics + [k for k in extra if k not in metrics]
            row = Row(
                model=name, label=entry.label or name, distribution=recs[0]["model"]["distribution"],
                version=recs[0]["model"]["version"], params=recs[0]["model"]["params"], params_hash=h,
                seeds=[r["seed"] for r in recs],
                test={m: _mean_std([r["metrics"]["test"][m] for r in recs]) for m in mets
                      if all(m in r["metrics"]["test"] for r in recs)},
                valid={m: _mean_std([r["metrics"]["valid"][m] for r in recs]) for m in mets
                       if all(m in r["metrics"]["valid"] for r in recs)},
                fit_s=float(np.mean([r["timing"].get("fit_s", 0.0) for r in recs])),
                epochs=float(np.mean([(r.get("fit") or {}).get("best_epoch") or 0 for r in recs])),
                records=sorted(rel for rel, _ in g),
            )
            candidates.append(row)
        # model selection on validation only: the configuration with the best valid main metric
        sign = 1 if higher_is_better(main) else -1
        candidates.sort(key=lambda r: (-sign * r.valid.get(main, (-math.inf * sign, 0))[0], r.params_hash))
        rows.append(candidates[0])
    sign = 1 if higher_is_better(main) else -1
    rows.sort(key=lambda r: (-sign * r.test.get(main, (-math.inf * sign, 0))[0], r.model))
    for i, r in enumerate(rows, 1):
        r.rank = i
    envs = sorted({f"python {rec['env']['python']}, torch {rec['env']['torch']}, {rec['env']['device']}"
                   for g in groups.values() for _, rec in g})
    first = next((rec for g in groups.values() for _, rec in g), None)
    dataset = first["dataset"] if first else {"name": suite.dataset["name"], "version": suite.dataset["version"]}
    return Leaderboard(suite.name, suite.version, main, metrics, rows, sorted(rejected), sorted(failed),
                       suite.protocol.as_dict(), dataset, envs)


def _fmt(ms: tuple[float, float] | None) -> str:
    if ms is None:
        return "-"
    return f"{ms[0]:.4f} ± {ms[1]:.4f}"


def _short_params(params: dict) -> str:
    return ", ".join(f"{k}={params[k]}" for k in sorted(params)) or "-"


def table_columns(lb: Leaderboard) -> list[str]:
    cols = [lb.main_metric] + [m for m in lb.metrics if m != lb.main_metric]
    for r in lb.rows:
        for m in r.test:
            if m not in cols:
                cols.append(m)
    return cols


def to_markdown(lb: Leaderboard, suite) -> str:
    from tabulate import tabulate

    cols = table_columns(lb)
    headers = ["Rank", "Model", "Seeds"] + [("**" + c + "**" if c == lb.main_metric else c) for c in cols] + [
        "Fit (s)", "Best epoch"]
    body = []
    for r in lb.rows:
        body.append([r.rank, r.label, len(r.seeds)] + [_fmt(r.test.get(c)) for c in cols] +
                    [f"{r.fit_s:.1f}", f"{r.epochs:.0f}"])
    lines = [f"# Leaderboard: {lb.suite} v{lb.version}", ""]
    desc = suite.data["suite"].get("description")
    if desc:
        lines += [desc.strip(), ""]
    ds = lb.dataset
    lines += [
        f"Dataset **{ds.get('name')}** v{ds.get('version')}, fingerprint `{str(ds.get('fingerprint', '-'))[:16]}`"
        + (f", {ds['stats']['users']} users, {ds['stats']['items']} items, {ds['stats']['interactions']} interactions"
           if "stats" in ds else "") + ".",
        f"Test metrics, mean ± sample std over seeds; models are sorted by **{lb.main_metric}**. "
        "Hyper-parameters and early stopping are chosen on the validation split only.",
        "",
        tabulate(body, headers=headers, tablefmt="github", disable_numparse=True),
        "",
        "## Protocol",
        "",
    ]
    p = lb.protocol
    split = ds.get("split", {})
    filters = ds.get("filters", {})
    lines += [
        f"- Split: `{canonical_json(split, indent=None).strip()}`; filters: `{canonical_json(filters, indent=None).strip()}`",
        f"- Candidates: {p['candidates']} items (full ranking, never sampled); "
        f"masked at test: train{' + valid' if p['mask_valid_at_test'] else ''} items",
        f"- Fit on {p['fit_on']}; selection and early stopping on {p['selection']}",
        f"- Protocol hash `{suite.protocol.hash}`; seeds {suite.seeds}",
        "",
        "## Configurations",
        "",
    ]
    for r in lb.rows:
        lines.append(f"- **{r.label}** ({r.distribution} {r.version}), params `{r.params_hash[:8]}`: "
                     f"{_short_params(r.params)}")
    lines += ["", "## Environment", ""] + [f"- {e}" for e in lb.environments]
    if lb.rejected or lb.failed:
        lines += ["", "## Excluded records", ""]
        lines += [f"- rejected `{p}`: {why}" for p, why in lb.rejected]
        lines += [f"- failed `{p}`: {why}" for p, why in lb.failed]
    lines += ["", "## Reproduce", "", "```",
              f"mmbench suite run leaderboards/{suite.folder.name}",
              f"mmbench leaderboard build leaderboards/{suite.folder.name}", "```", ""]
    return "\n".join(lines)


def to_csv(lb: Leaderboard) -> str:
    cols = table_columns(lb)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "model", "distribution", "version", "params_hash", "n_seeds"] +
               [x for c in cols for x in (f"{c}_mean", f"{c}_std")] + ["fit_s", "best_epoch"])
    for r in lb.rows:
        vals = []
        for c in cols:
            ms = r.test.get(c)
            vals += [f"{ms[0]:.6f}", f"{ms[1]:.6f}"] if ms else ["", ""]
        w.writerow([r.rank, r.label, r.distribution, r.version, r.params_hash[:8], len(r.seeds)] + vals +
                   [f"{r.fit_s:.3f}", f"{r.epochs:.1f}"])
    return buf.getvalue()


def to_json(lb: Leaderboard) -> str:
    def ms(d):
        return {k: {"mean": round(v[0], 8), "std": round(v[1], 8)} for k, v in sorted(d.items())}

    obj = {
        "schema": "mmbench.leaderboard/1",
        "suite": lb.suite, "version": lb.version, "main_metric": lb.main_metric,
        "dataset": lb.dataset, "protocol": lb.protocol,
        "rows": [{"rank": r.rank, "model": r.model, "label": r.label, "distribution": r.distribution,
                  "version": r.version, "params": r.params, "params_hash": r.params_hash, "seeds": r.seeds,
                  "test": ms(r.test), "valid": ms(r.valid), "fit_s": round(r.fit_s, 3),
                  "best_epoch": round(r.epochs, 2), "records": r.records} for r in lb.rows],
        "rejected": [{"record": p, "reason": w} for p, w in lb.rejected],
        "failed": [{"record": p, "reason": w} for p, w in lb.failed],
        "environments": lb.environments,
    }
    return canonical_json(obj)


def write(lb: Leaderboard, suite, out_dir: Path | None = None) -> Path:
    out = out_dir or suite.folder / f"v{suite.version}"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "README.md", to_markdown(lb, suite))
    atomic_write_text(out / "leaderboard.csv", to_csv(lb))
    atomic_write_text(out / "leaderboard.json", to_json(lb))
    return out
