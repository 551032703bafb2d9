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
