"""Parity records: the comparison of our model with a peer's over seeds, the record's
schema, its text table, and the files a suite keeps (``<suite>/parity/<model>-<peer>.json``).

The test: for every test metric, Welch's two-sample t-test (unequal variances, two-sided)
of our per-seed means against the peer's; the gap is *within seed noise* when p >= ALPHA.
With three seeds the test only finds a gap that is large against the spread between seeds;
the table shows both means ± std, so the size of the spread is there to read.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import DataError
from ..io import canonical_json, read_json

SCHEMA = "mmbench.parity/1"
ALPHA = 0.05
TEST = f"Welch's t-test over seeds (two-sided), within seed noise when p >= {ALPHA:g}"


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of Welch's t-test; with no spread on either side: 1 if the means are
    equal, else 0."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least two values per side")
    if max(a) == min(a) and max(b) == min(b):
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def compare(ours: list[dict], theirs: list[dict], protocol) -> dict:
    """metric -> ours and theirs (mean, std), relative gap (ours - theirs) / theirs, p, within noise."""
    from ..stats import summarize

    out = {}
    for m in protocol.ranking_metrics:
        a = [r["metrics"]["test"][m] for r in ours]
        b = [r["metrics"]["test"][m] for r in theirs]
        sa, sb = summarize(a), summarize(b)
        p = welch_p(a, b)
        out[m] = {"ours": {"mean": round(sa.mean, 8), "std": round(sa.std, 8)},
                  "theirs": {"mean": round(sb.mean, 8), "std": round(sb.std, 8)},
                  "gap": round((sa.mean - sb.mean) / sb.mean, 6) if sb.mean else None,
                  "p": round(p, 6), "within_noise": p >= ALPHA}
    return out


def make_record(*, model, peer, peer_version, mapping, params, dataset, features, protocol, suite, ours, theirs,
                comparison, env, created) -> dict:
    cost = {side: round(sum(r["timing"]["total_s"] for r in runs), 3) for side, runs in (("ours", ours),
                                                                                       ("theirs", theirs))}
    return {"schema": SCHEMA, "model": model, "peer": {"name": peer, "version": peer_version},
            "mapping": mapping.as_dict(), "params": params, "dataset": dataset, "features": features,
            "protocol": protocol.as_dict(), "main_metric": protocol.valid_metric("ranking"), "suite": suite,
            "seeds": [r["seed"] for r in ours], "test": TEST, "alpha": ALPHA, "comparison": comparison,
            "ours": ours, "theirs": theirs, "cost_s": cost | {"total": round(cost["ours"] + cost["theirs"], 3)},
            "env": env, "created": created}


def parity_path(folder: Path, model: str, peer: str) -> Path:
    return Path(folder) / "parity" / f"{model}-{peer}.json"


def to_json(record: dict) -> str:
    return canonical_json(record)


def load_parity(folder: Path) -> list[dict]:
    """The parity records kept in ``<folder>/parity/`` (sorted by model, then peer); a file
    that is not one is an error naming it."""
    out = []
    for p in sorted((Path(folder) / "parity").glob("*.json")):
        rec = read_json(p)  # invalid JSON: a DataError naming the file, line and column
        missing = [k for k in ("model", "peer", "comparison", "main_metric", "seeds", "dataset", "cost_s")
                   if not isinstance(rec, dict) or k not in rec]
        if not isinstance(rec, dict) or rec.get("schema") != SCHEMA or missing:
            raise DataError(f"not a {SCHEMA} record" + (f" (missing {', '.join(missing)})" if missing else ""),
                            where=str(p), hint="write it with `mmbench parity`")
        out.append(rec)
    return sorted(out, key=lambda r: (r["model"], r["peer"]["name"]))


def _cell(s: dict) -> str:
    return f"{s['mean']:.4f} ± {s['std']:.4f}"


def table_rows(records: list[dict], metric: str | None = None) -> list[list[str]]:
    """One row per record on its main metric (or ``metric``): model, peer, ours, theirs, gap,
    p, within noise, cost."""
    rows = []
    for r in records:
        m = metric or r["main_metric"]
        c = r["comparison"][m]
        gap = "-" if c["gap"] is None else f"{100 * c['gap']:+.1f}%"
        rows.append([r["model"], f"{r['peer']['name']} {r['peer']['version']} ({r['mapping']['peer_model']})", m,
                     _cell(c["ours"]), _cell(c["theirs"]), gap, _p(c["p"]), "yes" if c["within_noise"] else "no",
                     f"{r['cost_s']['ours']:,.0f} + {r['cost_s']['theirs']:,.0f}"])
    return rows


HEADERS = ["model", "peer", "metric", "ours", "theirs", "gap", "p", "within noise", "cost (s): ours + theirs"]


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if not math.isnan(p) else "-"


def readme_text(records: list[dict], suite: str) -> str:
    """``<suite>/parity/README.md``: the table of the records kept there (what a rules-2 board's
    Parity section shows), rewritten by ``mmbench parity --suite`` after each record."""
    from tabulate import tabulate

    body = [row + [_epochs(r)] for row, r in zip(table_rows(records), records)]
    return "\n".join([f"# Parity: {suite}", "", "Our baselines against a packaged peer's implementation on this "
                      "suite's split, evaluator, masking and early-stopping rule (`mmbench parity`; each JSON file "
                      f"holds every metric, the hyper-parameter mapping, histories, timings and versions). {TEST}.",
                      "", tabulate(body, headers=HEADERS + ["epochs: budget; best (ours / theirs)"], tablefmt="github",
                                   disable_numparse=True), ""])


def _epochs(r: dict) -> str:
    """``budget; best epochs of ours per seed / of theirs per seed``."""
    best = "/".join(",".join(str(x["fit"]["best_epoch"]) for x in r[side]) for side in ("ours", "theirs"))
    return f"{r['params'].get('epochs', '-')}; {best}"


def summary_text(record: dict) -> str:
    """The CLI's report: the hyper-parameter mapping, then every test metric."""
    from tabulate import tabulate

    m = record["mapping"]
    lines = [f"{record['model']} (mmbench) vs {record['peer']['name']} {record['peer']['version']} "
             f"{m['peer_model']} on {record['dataset']['name']} ({record['dataset']['fingerprint'][:12]}), "
             f"seeds {record['seeds']}", "", "mapping: " + ", ".join(f"{k}={v}" for k, v in m["settings"].items())
             + (f"; features given {m['features']}" if m.get("features") else "")]
    lines += [f"  - {n}" for n in m["notes"]]
    body = [[k, _cell(c["ours"]), _cell(c["theirs"]), "-" if c["gap"] is None else f"{100 * c['gap']:+.1f}%",
             _p(c["p"]), "yes" if c["within_noise"] else "no"] for k, c in record["comparison"].items()]
    lines += ["", tabulate(body, headers=["test metric", "ours", "theirs", "gap", "p", "within noise"],
                           tablefmt="github", disable_numparse=True), "", record["test"],
              f"cost: ours {record['cost_s']['ours']:,.1f} s, theirs {record['cost_s']['theirs']:,.1f} s"]
    return "\n".join(lines)
