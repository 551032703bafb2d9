"""Model commands: ``models list/info``, ``check`` (conformance), ``plugin new``."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import MMBenchError
from .app import Group

COLD_ID_ONLY = ("cannot score an item without training interactions (it reads no item content). mmbench's "
                "evaluator still ranks every item, by what training left in its row: popularity 0 for Pop (below "
                "every warm item, ties by item index), item factors that training only moved as sampled negatives "
                "for a factor model. On a cold-start board (a /cold column) its row is marked ° as ID-only and it is "
                "selected on the metric over all items.")
COLD_CONTENT = ("scored from its item content (any ID part the model adds stays as training left it: moved only "
                "as a sampled negative).")


@click.group(cls=Group)
def models():
    """Registered models (entry points ``mmbench.models``)."""


@models.command("list")
@click.option("--check", is_flag=True, help="Import each plugin and report broken ones (slower).")
def models_list(check):
    """Every registered model, read from entry-point metadata (no plugin code is imported)."""
    from .. import registry

    rows = []
    for name, e in registry.entries("models").items():
        module = e.value.split(":", 1)[0]
        state = "ok"
        if not registry.module_findable(module):
            state = f"broken: module {module!r} not found"
        if check and state == "ok":
            try:
                e.load()
            except MMBenchError as exc:
                state = "broken: " + str(exc).split(": ", 2)[-1]
        rows.append((name, f"{e.distribution} {e.version}", e.value, state))
    width = max((len(r[0]) for r in rows), default=4)
    for name, dist, value, state in rows:
        click.echo(f"{name:<{width}}  {dist:<22} {value:<45} {state}")


@models.command("info")
@click.argument("name")
def models_info(name):
    """What NAME is: paper, task, modalities it needs or uses, parameters and defaults, and
    the search space a suite's tuning budget draws from."""
    import inspect

    from ..models import model_params
    from ..runner import ModelSpec

    spec = ModelSpec.resolve(name)
    cls = spec.cls
    click.echo(f"{spec.name}  ({spec.distribution} {spec.version}; {cls.__module__}.{cls.__qualname__})")
    click.echo(f"task: {getattr(cls, 'task', 'ranking')}")
    if getattr(cls, "paper", ""):
        click.echo(f"paper: {cls.paper}")
    mods = [(label, getattr(cls, attr, ())) for label, attr in
            (("requires", "requires"), ("requires any of", "requires_any"), ("uses", "uses"))]
    shown = [f"{label} {', '.join(v)}" for label, v in mods if v]
    click.echo("modalities: " + ("; ".join(shown) if shown else "none (interactions only)"))
    click.echo("cold items: " + (COLD_CONTENT if shown else COLD_ID_ONLY))
    click.echo("parameters:")
    declared = model_params(cls)
    width = max((len(n) for n in declared), default=0)
    for name, p in declared.items():
        click.echo(f"  {name:<{width}} = {p.default!r:<10} {p.allowed():<28} {p.help}".rstrip())
    spaces = {name: p.space for name, p in declared.items() if p.space}
    click.echo("")
    click.echo("search space (what a suite's [tuning] budget draws from; the default in the middle):"
               if spaces else "search space: none declared (suites run it with its defaults)")
    for name, space in spaces.items():
        click.echo(f"  {name:<{width}} {', '.join(map(repr, space))}")
    doc = inspect.getdoc(cls)
    if doc:
        click.echo("")
        click.echo(doc)




@click.command("check")
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

    from .. import registry
    from ..check import check_models
    from .app import parse_params  # noqa: I001
    from ..errors import ConfigError
    from ..models.training import resolve_device

    if all_models:
        models = tuple(registry.entries("models")) + tuple(m for m in models if m not in registry.entries("models"))
    if not models:
        raise ConfigError("no model given", hint="name models (`mmbench models list`) or use --all")
    ds = None
    if dataset is not None:
        from ..data.cards import find_card
        from ..data.prepare import prepare

        ds = prepare(find_card(dataset))
    results = check_models(models, params=parse_params(params), device=resolve_device(device), dataset=ds)
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


@click.group(cls=Group)
def plugin():
    """Third-party model packages."""


@plugin.command("new")
@click.argument("name")
@click.option("--dir", "dest", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Folder in which the package folder is created.")
def plugin_new(name, dest):
    """Scaffold a pip-installable model package NAME (entry point, model skeleton, a test
    that runs `mmbench check`)."""
    from ..plugin import scaffold

    root, files = scaffold(name, dest)
    for f in files:
        click.echo(f"created {f}")
    click.echo(f"\nnext: pip install -e {root} && mmbench check {name} && pytest {root}/tests")
