"""Leaderboard commands: ``leaderboard build/check/reproduce`` and ``compare``."""
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
    click.echo(_compute(lb))
    for rel, why in lb.rejected:
        click.echo(f"  rejected {rel}: {why}")


def _compute(lb) -> str:
    from ..suite import RULES

    c = lb.compute
    return (f"compute: {c['compute_s']:.0f} s of fit + evaluation over {c['runs']} runs ({c['search_runs']} search), "
            f"wall time {c['wall_s']:.0f} s; rules {lb.rules}"
            + (f" (built before rules {RULES}: checked as it was built)" if lb.rules < RULES else ""))


@leaderboard.command("check")
@click.argument("suite_path", type=click.Path(path_type=Path))
@click.option("--results", type=click.Path(path_type=Path), default=None)
@click.option("--require-built", is_flag=True, help="Fail when the suite's v<N>/ has not been built yet.")
def leaderboard_check(suite_path, results, require_built):
    """Rebuild SUITE's leaderboard from its records and fail on any byte difference with the
    committed v<N>/ files, on any rejected record and (rules 2) on an unconverged cell of a
    converged track or a changed suite definition (what CI runs). Older versions are
    reported as superseded and kept as they are. A version not built yet (a suite still
    running, perhaps over several sessions) claims nothing: it is reported, not failed."""
    from .. import leaderboard as lbm
    from ..suite import load_suite

    s = load_suite(suite_path)
    lbm.check_rules(s)
    folder = lbm.version_dir(s)
    if not (folder / "leaderboard.json").is_file() and not require_built:
        n = sum(1 for _ in s.results_dir(results).rglob("seed*.json")) if s.results_dir(results).is_dir() else 0
        click.echo(f"{folder}: not built yet ({n} records so far): nothing committed to check; "
                   f"`mmbench suite run {suite_path}` then `mmbench leaderboard build {suite_path}`")
        return
    lb = lbm.build(s, s.results_dir(results))
    if not lb.rows:
        raise MMBenchError(f"no valid records for suite {s.name!r} under {s.results_dir(results)}",
                           hint="commit the suite's records (suite.results) or pass --results")
    lbm.check_frozen(s, folder)
    problems = lbm.check(lb, s)
    for old, rules in lb.superseded:
        click.echo(f"{s.folder}/v{old}: superseded by v{s.version} (built under rules {rules}; kept as committed, "
                   "not rebuilt)")
    if problems:
        for p in problems:
            click.echo(f"{folder}: {p}", err=True)
        click.echo(f"error: {folder} does not hold; run `mmbench leaderboard build {suite_path}` (or `make "
                   "leaderboard`) and commit the result, after fixing any record it rejects", err=True)
        sys.exit(1)
    click.echo(f"{folder}: {len(lbm.FILES)} files identical to a rebuild from {len(lb.rows)} models' records; "
               f"{_compute(lb)}")


@leaderboard.command("reproduce")
@click.argument("suite_path", type=click.Path(path_type=Path))
@click.option("--sample", type=click.IntRange(min=1), default=2, show_default=True,
              help="How many final records to run again.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draw (a failure can be replayed).")
@click.option("--max-seconds", type=click.FloatRange(min=0), default=None,
              help="Draw only records whose rerun takes at most this long as recorded (fit + evaluation; "
                   "a final record that reused its search's model counts that training).")
@click.option("--results", type=click.Path(path_type=Path), default=None)
def leaderboard_reproduce(suite_path, sample, seed, max_seconds, results):
    """Run N of SUITE's final records again (drawn at random, seeded) with the thread count each
    notes; fail unless every metric, the training history and the per-user values are
    bit-identical. A suite whose data is not available here is skipped with the reason."""
    from ..leaderboard.reproduce import reproduce
    from ..suite import load_suite

    s = load_suite(suite_path)
    report = reproduce(s, results, sample=sample, seed=seed, max_seconds=max_seconds)
    if report.skipped:
        click.echo(f"{suite_path}: skipped: {report.skipped}")
        return
    left = "; ".join(f"{n} {why}" for why, n in sorted(report.left_out.items()))
    click.echo(f"{suite_path}: {len(report.outcomes)} of {report.eligible} eligible final records drawn (seed {seed}; "
               f"{report.finals} in all" + (f"; left out: {left}" if left else "") + ")")
    for o in report.outcomes:
        click.echo(f"  {o.status:<9} {o.record} ({o.seconds:.1f} s)" + (f": {o.detail}" if o.detail else ""))
    if not report.ok:
        sys.exit(1)


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
    from ..leaderboard.compare import compare as compare_records

    report = compare_records(records, metrics, test=test, alpha=alpha)
    click.echo(report.table(fmt))
    click.echo("\n" + report.legend())
