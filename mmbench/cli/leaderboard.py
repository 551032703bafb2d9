"""Leaderboard commands: ``leaderboard build/check`` and ``compare``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import MMBenchError
from .app import Group


@click.group(cls=Group)
def leaderboard():
    """Build leaderboards from run records."""


@leaderboard.command("build")
@click.argument("suite_path", type=click.Path(path_type=Path))
@click.option("--results", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (default SUITE/v<N>).")
@click.option("--quiet", is_flag=True)
@click.option("--skip-empty", is_flag=True, help="Succeed without writing anything when there are no records.")
def leaderboard_build(suite_path, results, out, quiet, skip_empty):
    """Write SUITE/v<N>/ README.md, leaderboard.csv, leaderboard.json and index.html from the records."""
    from .. import leaderboard as lbm
    from ..suite import load_suite

    s = load_suite(suite_path)
    lb = lbm.build(s, s.results_dir(results))
    if not lb.rows and skip_empty:
        click.echo(f"{suite_path}: no records, nothing built")
        return
    if not lb.rows:
        raise MMBenchError(f"no valid records for suite {s.name!r} under {s.results_dir(results)}",
                           hint=f"run `mmbench suite run {suite_path}` first")
    folder = lbm.write(lb, s, out)
    if not quiet:
        click.echo(lbm.to_markdown(lb, s).split("## Protocol")[0].rstrip())
    click.echo(f"wrote {folder}/README.md, leaderboard.csv, leaderboard.json, index.html "
               f"({len(lb.rows)} models, {len(lb.rejected)} rejected, {len(lb.failed)} failed records)")
    for rel, why in lb.rejected:
        click.echo(f"  rejected {rel}: {why}")




@leaderboard.command("check")
@click.argument("suite_path", type=click.Path(path_type=Path))
@click.option("--results", type=click.Path(path_type=Path), default=None)
def leaderboard_check(suite_path, results):
    """Rebuild SUITE's leaderboard from its records and fail on any byte difference with the
    committed v<N>/ files (what CI runs)."""
    from .. import leaderboard as lbm
    from ..suite import load_suite

    s = load_suite(suite_path)
    lb = lbm.build(s, s.results_dir(results))
    if not lb.rows:
        raise MMBenchError(f"no valid records for suite {s.name!r} under {s.results_dir(results)}",
                           hint="commit the suite's records (suite.results) or pass --results")
    lbm.check_frozen(s, lbm.version_dir(s))
    problems = lbm.check(lb, s)
    folder = lbm.version_dir(s)
    if problems:
        for p in problems:
            click.echo(f"{folder}/{p}", err=True)
        click.echo(f"error: {folder} is not what its records build; run `mmbench leaderboard build {suite_path}` "
                   "(or `make leaderboard`) and commit the result", err=True)
        sys.exit(1)
    click.echo(f"{folder}: {len(lbm.FILES)} files identical to a rebuild from {len(lb.rows)} models' records")


SUPERSCRIPT = dict(zip("abcdefghijklmnopqrstuvwxyz", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖᵠʳˢᵗᵘᵛʷˣʸᶻ"))


def _collect(paths: tuple[Path, ...]):
    """Final records named on the command line (files, or folders searched recursively)."""
    from ..records import iter_records, read_record, record_stage

    found = []
    for p in paths:
        if p.is_dir():
            for path, rec in iter_records(p):
                if isinstance(rec, Exception):
                    raise rec
                if rec["status"] == "ok" and record_stage(rec) == "final":
                    found.append((path, rec))
        else:
            rec = read_record(p)
            if rec["status"] != "ok":
                raise MMBenchError("a failed run has no metrics to compare", where=str(p))
            if record_stage(rec) != "final":
                raise MMBenchError("a search record has no test metrics", where=str(p),
                                   hint="compare the final records (seed<N>.json)")
            found.append((p, rec))
    if len(found) < 2:
        raise MMBenchError(f"need at least two records to compare, got {len(found)}",
                           hint="name record files (seed<N>.json) or folders that hold them")
    return found


@click.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-m", "--metric", "metrics", multiple=True, help="Metric to show (repeatable; default: the protocol's).")
@click.option("--test", type=click.Choice(["t-test", "wilcoxon", "fisher"]), default="t-test", show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--format", "fmt", default="simple", show_default=True,
              help="Table format (tabulate: simple, github, latex, ...).")
def compare(records, metrics, test, alpha, fmt):
    """Compare run RECORDS (files or folders) ranx-style: one row per model configuration
    (seeds averaged per user), superscripts name the rows it is significantly better than
    (paired test on per-user values, Holm-corrected over all pairs of each metric)."""
    from tabulate import tabulate

    from ..leaderboard import higher_is_better
    from ..records import read_per_user
    from ..stats import compare_all, per_user_mean

    found = _collect(records)
    ref = found[0][1]
    for path, rec in found[1:]:
        for what, a, b in (("dataset fingerprint", ref["dataset"]["fingerprint"], rec["dataset"]["fingerprint"]),
                           ("protocol", ref["protocol_hash"], rec["protocol_hash"])):
            if a != b:
                raise MMBenchError(f"records are not comparable: {what} {b[:12]} differs from {a[:12]} of "
                                   f"{found[0][0]}", where=str(path))
    groups: dict[tuple[str, str], list] = {}
    for path, rec in found:
        groups.setdefault((rec["model"]["name"], rec["model"]["params_hash"]), []).append((path, rec))
    if len(groups) < 2:
        raise MMBenchError(f"need at least two records of different models or parameters, got {len(found)} of "
                           "one configuration", hint="name the records of the runs to compare")
    names_count: dict[str, int] = {}
    for name, _ in groups:
        names_count[name] = names_count.get(name, 0) + 1
    shown = list(metrics) or [m for m in ref["protocol"]["metrics"] if m in ref["metrics"]["test"]] + [
        m for m in ("rmse", "mae") if m in ref["metrics"]["test"]]
    runs = []
    for (name, h), members in sorted(groups.items()):
        label = name if names_count[name] == 1 else f"{name} ({h[:8]})"
        pu = [read_per_user(p) for p, _ in sorted(members, key=lambda x: x[1]["seed"])]
        seeds = sorted(r["seed"] for _, r in members)
        vectors = {}
        for m in shown:
            users_key = "rating_users" if m in ("rmse", "mae") else "users"
            if all(m in z for z in pu):
                vectors[m] = per_user_mean([(z[users_key], z[m]) for z in pu])[1]
        means = {m: sum(r["metrics"]["test"][m] for _, r in members) / len(members)
                 for m in shown if all(m in r["metrics"]["test"] for _, r in members)}
        runs.append((label, seeds, vectors, means))
    letters = "abcdefghijklmnopqrstuvwxyz"
    if len(runs) > len(letters):
        raise MMBenchError(f"at most {len(letters)} configurations can be compared at once, got {len(runs)}")
    better = {}
    for m in shown:
        vecs = {letters[i]: r[2][m] for i, r in enumerate(runs) if m in r[2]}
        lengths = {len(v) for v in vecs.values()}
        if len(vecs) >= 2 and len(lengths) == 1:
            better[m] = compare_all(vecs, test, alpha, higher_is_better(m))
    body = []
    for i, (label, seeds, _, means) in enumerate(runs):
        row = [letters[i], label, len(seeds)]
        for m in shown:
            if m not in means:
                row.append("-")
                continue
            marks = "".join(SUPERSCRIPT[x] for x in sorted(better.get(m, {}).get(letters[i], ())))
            row.append(f"{means[m]:.4f}{marks}")
        body.append(row)
    click.echo(tabulate(body, headers=["#", "Model", "Seeds"] + shown, tablefmt=fmt, disable_numparse=True))
    from ..leaderboard import test_name

    click.echo(f"\nSuperscripts: significantly better than those rows ({test_name(test)} on per-user values "
               f"averaged over seeds, Holm-corrected over all pairs, alpha = {alpha:g}).")
