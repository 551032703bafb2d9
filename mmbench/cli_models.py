"""Model commands: check (conformance), plugin scaffolding.

Attached to the ``mmbench`` group defined in :mod:`mmbench.cli`; heavy imports stay inside
the commands."""
from __future__ import annotations

import click  # noqa: F401

from .cli import _Group, main  # noqa: F401


@main.command("check")
@click.argument("models", nargs=-1)
@click.option("--all", "all_models", is_flag=True, help="Check every registered model.")
@click.option("-p", "--param", "params", multiple=True, help="Override a parameter of every model, key=value.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dataset", default=None,
              help="Run on this prepared dataset instead of the tiny synthetic one (e.g. for a model that "
                   "needs a modality the synthetic data lacks). Slower.")
@click.option("-v", "--verbose", is_flag=True, help="One row per check instead of one per model.")
def check(models, all_models, params, device, dataset, verbose):
    """Conformance checks of MODEL(s) on a tiny synthetic multimodal dataset (like
    scikit-learn's check_estimator): fit returns self, score shape, no NaN, determinism,
    inputs untouched, params round trip, declared modalities. Exit 1 if any check fails."""
    from tabulate import tabulate

    from . import registry
    from .check import check_models
    from .cli import _parse_params
    from .errors import ConfigError
    from .train import resolve_device

    if all_models:
        models = tuple(registry.entries("models")) + tuple(m for m in models if m not in registry.entries("models"))
    if not models:
        raise ConfigError("no model given", hint="name models (`mmbench models list`) or use --all")
    ds = None
    if dataset is not None:
        from .data.cards import find_card
        from .data.prepare import prepare

        ds = prepare(find_card(dataset))
    results = check_models(models, params=_parse_params(params), device=resolve_device(device), dataset=ds)
    if verbose:
        rows = [[r.model, r.check, "ok" if r.passed else "FAILED", r.detail[:120]] for r in results]
        click.echo(tabulate(rows, headers=["model", "check", "result", "detail"]))
    else:
        rows = []
        for m in dict.fromkeys(r.model for r in results):
            mine = [r for r in results if r.model == m]
            bad = [r for r in mine if not r.passed]
            rows.append([m, f"{len(mine) - len(bad)}/{len(mine)}", "ok" if not bad else "FAILED",
                         "; ".join(f"{r.check}: {r.detail}" for r in bad)[:160]])
        click.echo(tabulate(rows, headers=["model", "passed", "result", "failures"]))
    failed = sum(not r.passed for r in results)
    if failed:
        click.echo(f"{failed} check(s) failed", err=True)
        raise SystemExit(1)
