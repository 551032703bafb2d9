"""The text renderings of a leaderboard: README.md (tables, statistics, model selection,
protocol, provenance), leaderboard.csv and leaderboard.json. What a board under rules 2
adds (unconverged marks, the rating statistic, compute, tuning, definition hash, manifest)
is rendered only for such a board, so an older one rebuilds to its committed bytes."""
from __future__ import annotations

import csv
import io

import numpy as np

from ..evaluate.metrics import get
from ..io import canonical_json
from ..stats import TEST_NAMES, TESTS, Summary
from .parity import as_json as parity_json, intro as parity_intro
from .build import Leaderboard, Row

MARK = "†"  # significantly worse than the best of the column
UNCONVERGED = "‡"  # a seed's run stopped at its epoch budget with its best epoch within the last `patience`
ENV_KEYS = ["mmbench", "git", "python", "torch", "device", "threads", "platform", "records"]


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
    if row.unconverged:
        text += UNCONVERGED
    return text


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def short_params(params: dict) -> str:
    return ", ".join(f"{k}={params[k]}" for k in sorted(params)) or "-"


def _seeds(r: Row, suite) -> str:
    return f"{len(r.seeds)}" if len(r.seeds) == len(suite.seeds) else f"{len(r.seeds)}/{len(suite.seeds)}"


def legend(lb: Leaderboard) -> str:
    text = (f"Bold: best of the column. {MARK}: significantly worse than the best of the column "
            f"({TEST_NAMES[lb.board['test']]} on per-user values averaged over seeds, Holm-corrected over the "
            f"models, α = {lb.board['alpha']:g}).")
    if lb.rules < 2:
        return text
    text += (f" {UNCONVERGED}: not converged: for some seed the best validation epoch lies within the last "
             "`patience` evaluations of the epoch budget, so the training was cut, not finished"
             + (" (allowed on this fixed-budget track)." if lb.fixed_budget else "."))
    if any(get(m).kind == "rating" for m in lb.columns):
        text += (" RMSE and MAE: each user's error on their held-out ratings, averaged over users; the mean ± std, "
                 "the confidence interval and the paired test are all on this statistic.")
    return text


def compute_line(lb: Leaderboard) -> str:
    c = lb.compute
    return (f"Compute: {c['compute_s']:,.0f} s of fitting and evaluation over {c['runs']} runs "
            f"({c['runs'] - c['search_runs']} final, {c['search_runs']} search); wall time {c['wall_s']:,.0f} s "
            "(while at least one run was going, from the records).")


def title(lb: Leaderboard) -> str:
    return f"{lb.suite} v{lb.version}" + (" (fixed-budget track)" if lb.fixed_budget else "")


def _table(headers, body) -> str:
    from tabulate import tabulate

    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def to_markdown(lb: Leaderboard, suite) -> str:
    lines = _head(lb, suite)
    if not lb.rows:
        lines += ["No accepted records yet.", ""]
    else:
        lines += (_results(lb, suite) + _stats_section(lb) + _selection_section(lb) + _tuning_section(lb, suite)
                  + _parity_section(lb))
    lines += _protocol_section(lb, suite) + _provenance(lb, suite)
    return "\n".join(lines)


def _head(lb: Leaderboard, suite) -> list[str]:
    ds = lb.dataset
    lines = [f"# Leaderboard: {title(lb)}", ""]
    desc = suite.data["suite"].get("description")
    if desc:
        lines += [desc.strip(), ""]
    st = ds.get("stats", {})
    return lines + [
        f"Dataset **{ds.get('name')}** v{ds.get('version')}, fingerprint `{str(ds.get('fingerprint') or '-')[:16]}`"
        + (f", {st['users']} users, {st['items']} items, {st['interactions']} interactions" if st else "") + ".",
        f"Test metrics, mean ± sample std over seeds, sorted by **{lb.main_metric}**. "
        "Hyper-parameters and early stopping are chosen on the validation split only. " + legend(lb),
        "",
    ] + ([compute_line(lb), ""] if lb.rules >= 2 else [])


def _results(lb: Leaderboard, suite) -> list[str]:
    headers = ["Rank", "Model"] + [f"**{m}**" if m == lb.main_metric else m for m in lb.metrics] + [
        "Fit (s)", "Seeds"]
    body = [[r.rank, r.label] + [fmt_cell(r, m) for m in lb.metrics] + [f"{r.fit_s:.1f}", _seeds(r, suite)]
            for r in lb.rows]
    lines = [_table(headers, body), ""]
    if lb.beyond:
        lines += ["## Beyond accuracy, cold-start and long tail", "",
                  "Coverage: share of items in some top-k list; Gini: concentration of the recommendations "
                  "(lower is more even); novelty: mean self-information −log2(popularity) of recommended items; "
                  "`/cold`: restricted to items without training interactions; `/tail`: restricted to items "
                  "outside the top 20% by training popularity (users without such a test item left out).", ""]
        body = [[r.rank, r.label] + [fmt_cell(r, m) for m in lb.beyond] for r in lb.rows]
        lines += [_table(["Rank", "Model"] + lb.beyond, body), ""]
    return lines


def _protocol_section(lb: Leaderboard, suite) -> list[str]:
    ds, p = lb.dataset, lb.protocol
    lines = [
        "## Protocol", "",
        f"- Split: `{canonical_json(ds.get('split', {}), indent=None).strip()}`; "
        f"filters: `{canonical_json(ds.get('filters', {}), indent=None).strip()}`",
        f"- Candidates: {p['candidates']} items (full ranking, never sampled); "
        f"masked at test: train{' + valid' if p['mask_valid_at_test'] else ''} items",
        f"- Fit on {p['fit_on']}; selection and early stopping on {p['selection']}; "
        f"searched models: candidates on seed(s) {suite.search_seeds}, the chosen one on seeds {suite.seeds}",
        f"- Protocol hash `{lb.protocol_hash}`; a protocol change makes a new leaderboard version",
    ] + [f"- {fact}" for fact in rules_facts(lb)] + [
        "",
        "## Configurations", "",
    ]
    return lines + [f"- **{r.label}** (`{r.model}` from {r.distribution} {r.version}), params `{r.params_hash[:8]}`: "
                    f"{short_params(r.params)}" for r in lb.rows]


def rules_facts(lb: Leaderboard) -> list[str]:
    """What a rules-2 board states about itself: rules, definition, versions it supersedes."""
    if lb.rules < 2:
        return []
    lines = [f"Rules {lb.rules}; suite definition `{lb.definition_hash[:16]}` (dataset, split, protocol, models, "
             "search spaces, tuning budget, seeds): a change needs a new version; the records' sha256 are in "
             "`leaderboard.json` (`manifest`)"]
    if lb.superseded:
        lines.append("Supersedes " + ", ".join(f"v{v} (rules {r})" for v, r in lb.superseded)
                     + ": kept as committed")
    return lines


def tuning_summary(lb: Leaderboard, suite) -> tuple[str, list[tuple[str, str]]]:
    """The rules-2 tuning budget in words, and per row what it searched."""
    b = suite.budget
    how = "a seeded draw of the grid" if b["method"] == "grid" else "Optuna's TPE sampler"
    intro = (f"Every model with a declared search space gets {b['configurations']} configuration(s) ({how}, seed "
             f"{b['seed']}, the declared defaults first); a smaller space is run whole. The search spaces are the "
             "models' own declarations (paper defaults in the middle).")
    rows = []
    for r in lb.rows:
        space = suite.resolved.get(r.key, {}).get("space", {})
        size = int(np.prod([len(v) for v in space.values()])) if space else 1
        tried = len(r.selection.get("candidates", [])) or 1
        rows.append((r.label, "its defaults (no declared search space)" if not space else
                     f"{tried} of {size} configurations of "
                     + "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in sorted(space.items()))))
    return intro, rows


def _tuning_section(lb: Leaderboard, suite) -> list[str]:
    if lb.rules < 2 or not lb.rows:
        return []
    intro, rows = tuning_summary(lb, suite)
    return ["## Tuning", "", intro, ""] + [f"- **{label}**: {text}" for label, text in rows] + [""]


def _parity_section(lb: Leaderboard) -> list[str]:
    from ..parity import table_rows
    from ..parity.report import HEADERS

    if not lb.parity:
        return []
    return ["## Parity", "", parity_intro(lb), "", _table(HEADERS, table_rows(lb.parity)), ""]


def _provenance(lb: Leaderboard, suite) -> list[str]:
    """Environment, excluded records and how to reproduce."""
    lines = ["", "## Environment", ""]
    if lb.environments:
        lines += [_table(ENV_KEYS, [[str(e[k]) for k in ENV_KEYS] for e in lb.environments]), ""]
    if lb.rejected or lb.failed:
        lines += ["## Excluded records", ""]
        lines += [f"- rejected `{p}`: {why}" for p, why in lb.rejected]
        lines += [f"- failed `{p}`: {why}" for p, why in lb.failed]
        lines += [""]
    folder = f"leaderboards/{suite.folder.name}"
    return lines + ["## Reproduce", "", "```",
                    f"mmbench suite run {folder}        # runs what is missing; existing records are skipped",
                    f"mmbench leaderboard build {folder}",
                    f"mmbench leaderboard check {folder}  # rebuild and compare bytes with v{lb.version}/",
                    ] + ([f"mmbench leaderboard reproduce {folder} --sample 3  # run 3 records again: bit-identical?"]
                         if lb.rules >= 2 else []) + [
                    "```", "",
                    "Files: `leaderboard.csv`, `leaderboard.json` (every number, with confidence intervals and "
                    "p-values), `index.html` (open it in a browser: sortable table and charts, no network).", ""]


def _stats_section(lb: Leaderboard) -> list[str]:
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
            _table(headers, body), ""]


def _selection_section(lb: Leaderboard) -> list[str]:
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
                _table(["params"] + keys + [f"valid {metric}"], body), ""]
    if out:
        out = ["## Model selection", "", "Chosen configuration in bold: the best mean validation value; "
               "the test split was evaluated for the chosen configuration only.", ""] + out
    return out


def to_csv(lb: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    stats = ("mean", "std", "ci_low", "ci_high", "p_holm")
    w.writerow(["rank", "model", "registered_name", "distribution", "version", "params_hash", "n_seeds"] +
               [f"{c}_{s}" for c in lb.columns for s in stats] + ["fit_s", "best_epoch"]
               + (["not_converged_seeds"] if lb.rules >= 2 else []))
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
                   [f"{r.fit_s:.3f}", f"{r.epochs:.1f}"]
                   + ([" ".join(map(str, r.unconverged))] if lb.rules >= 2 else []))
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
    if lb.rules >= 2:
        for row, r in zip(obj["rows"], lb.rows):
            row["not_converged_seeds"] = r.unconverged
        obj.update({"rules": lb.rules, "definition": lb.definition, "definition_hash": lb.definition_hash,
                    "manifest": lb.manifest, "compute": lb.compute, "fixed_budget": lb.fixed_budget,
                    "supersedes": [{"version": v, "rules": r} for v, r in lb.superseded],
                    "rating_statistic": "mean over users of each user's error (table, interval and test)"})
        if lb.parity:
            obj["parity"] = parity_json(lb)
    return canonical_json(obj)
