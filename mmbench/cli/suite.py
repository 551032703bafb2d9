"""Suite commands: ``suite run/status``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .app import Group


@click.group(cls=Group)
def suite():
    """Run suites and see their state."""


@suite.command("run")
@click.argument("suite_path", type=click.Path(path_type=Path))
@click.option("--only", multiple=True, help="Only this model (repeatable).")
@click.option("--device", default=None, help="Override the suite's device.")
@click.option("--results", type=click.Path(path_type=Path), default=None)
@click.option("--force", is_flag=True)
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where jobs run (ray: needs the Ray backend installed).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel jobs (default: sized to the machine; 1 = in this process).")
@click.option("--address", default=None, help="Ray cluster address (--backend ray; default: a local instance).")
def suite_run(suite_path, only, device, results, force, backend, workers, address):
    """Run what is missing or failed in SUITE (finished records are skipped): hyper-parameter
    searches on validation first, then the chosen configurations on every seed. A failed
    run is kept beside as history; an unreadable record is reported (exit 1)."""
    from ..suite import load_suite, run_suite

    s = load_suite(suite_path)
    counts = run_suite(s, only=list(only) or None, device=device, results=results, force=force, echo=click.echo,
                       backend=backend, workers=workers, address=address)
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
    if counts["failed"] or counts["invalid"]:
        sys.exit(1)


@suite.command("status")
@click.argument("suite_path", type=click.Path(path_type=Path))
@click.option("--results", type=click.Path(path_type=Path), default=None)
def suite_status(suite_path, results):
    """Done / missing / failed / stale / invalid jobs of SUITE, and earlier failed runs kept as history."""
    from ..suite import load_suite, status

    rows = status(load_suite(suite_path), results)
    width = max((len(r["model"]) for r in rows), default=5)
    for r in rows:
        seed = f"seed {r['seed']}" if r["seed"] >= 0 else "-"
        click.echo(f"{r['state']:<8} {r['model']:<{width}} {r['params_hash']:<8} {seed:<8} {r['stage']:<6}"
                   + (f"  {r['reason']}" if r["reason"] else ""))
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    click.echo(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
