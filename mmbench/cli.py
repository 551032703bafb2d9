"""The ``mmbench`` command line: thin wrappers over library functions.

Every heavy import (torch, numpy-heavy modules, plugins) happens inside a command, so
``mmbench --help`` and ``mmbench models list`` stay fast. Errors print as one line
(``error: <where>: <what>; <what to do>``) with a non-zero exit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import MMBenchError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MMBenchError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing half-written was kept; rerun to continue", err=True)
            ctx.exit(130)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_params(pairs: tuple[str, ...]) -> dict:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise MMBenchError(f"parameter {p!r} is not key=value", hint="e.g. -p embedding_dim=64")
        out[key.strip()] = _parse_value(value.strip())
    return out


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmbench")
def main():
    """mmbench: reproducible benchmarks for multimodal recommendation."""


# -- datasets ---------------------------------------------------------------------------------
@main.group(cls=_Group)
def datasets():
    """Dataset cards: list and inspect."""


@datasets.command("list")
def datasets_list():
    """Every dataset card found (built-in, plugins, imported)."""
    from tabulate import tabulate

    from .data.cards import card_summary, list_cards

    rows = [card_summary(c) for c in list_cards()]
    click.echo(tabulate([[r["name"], r["version"], ", ".join(r["modalities"]), r["license"][:60], r["source"]]
                         for r in rows], headers=["name", "version", "modalities", "license", "source"]))


@datasets.command("info")
@click.argument("name")
def datasets_info(name):
    """The card of NAME, its licence, and its statistics once prepared."""
    from .data.cards import find_card, source_label
    from .data.prepare import prepare_dir_for

    card = find_card(name)
    m = card.meta
    click.echo(f"{m['title']} ({card.name} v{card.version})  [{card.path}]")
    if m.get("description"):
        click.echo(m["description"])
    click.echo(f"license:    {m['license']}")
    if m.get("citation"):
        click.echo(f"citation:   {m['citation']}")
    click.echo(f"format:     {m['format']}; modalities: {', '.join(m['modalities'])}")
    for s in card.sources:
        click.echo(f"source:     {s['name']}: {source_label(s)}" + (f"  ({s['note']})" if s.get("note") else ""))
    click.echo(f"filters:    {json.dumps(card.filters, sort_keys=True)}")
    click.echo(f"split:      {json.dumps(card.split, sort_keys=True)}")
    if card.data.get("stats"):
        click.echo("published:  " + ", ".join(f"{k} {v}" for k, v in card.data["stats"].items()))
    for src in card.sources:
        d = prepare_dir_for(card, card.filters, card.split, src["name"])
        if (d / "manifest.json").is_file():
            man = json.loads((d / "manifest.json").read_text())
            st = man["stats"]
            click.echo(f"prepared:   {d}")
            click.echo(f"fingerprint {man['fingerprint']}")
            click.echo(f"stats:      {st['users']} users, {st['items']} items, {st['interactions']} interactions, "
                       f"density {st['density']}")
            for k in ("train", "valid", "test"):
                v = st["splits"][k]
                click.echo(f"  {k:<6} {v['interactions']} interactions, {v['users']} users, {v['items']} items")
            for key, fp in sorted(man.get("features", {}).items()):
                click.echo(f"feature:    {key}  {fp[:16]}")
            break
    else:
        click.echo("not prepared yet: run `mmbench prepare " + card.name + "`")


@main.command()
@click.argument("name")
@click.option("--source", default=None, help="Which of the card's sources to use (default: first that works).")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
@click.option("--force", is_flag=True, help="Rebuild even if prepared.")
def prepare(name, source, mirror, force):
    """Prepare dataset NAME: read, filter, split, fingerprint (into $MMBENCH_HOME)."""
    from .data.cards import find_card
    from .data.prepare import prepare as _prepare

    card = find_card(name)
    ds = _prepare(card, source=source, mirror=mirror, force=force)
    st = ds.stats
    click.echo(f"{ds.name} v{ds.version}: {st['users']} users, {st['items']} items, "
               f"{st['interactions']} interactions -> {ds.path}")
    sp = st["splits"]
    click.echo(f"split train/valid/test: {sp['train']['interactions']} / {sp['valid']['interactions']} / "
               f"{sp['test']['interactions']}; fingerprint {ds.fingerprint}")


# -- models -----------------------------------------------------------------------------------
@main.group(cls=_Group)
def models():
    """Registered models (entry points ``mmbench.models``)."""


@models.command("list")
@click.option("--check", is_flag=True, help="Import each plugin and report broken ones (slower).")
def models_list(check):
    """Every registered model, read from entry-point metadata (no plugin code is imported)."""
    from . import registry

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
    """What NAME is: paper, task, modalities it needs or uses, parameters and defaults."""
    import inspect

    from .runner import ModelSpec

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
    click.echo("parameters:")
    for p, v in spec.params({}).items():
        click.echo(f"  {p} = {v!r}")
    doc = inspect.getdoc(cls)
    if doc:
        click.echo("")
        click.echo(doc)


# -- run --------------------------------------------------------------------------------------
@main.command()
@click.option("-m", "--model", "model", required=True, help="Registered model name or path/file.py:Class.")
@click.option("-d", "--dataset", "dataset", required=True, help="Dataset card name (see `datasets list`).")
@click.option("--seed", "seeds", type=int, multiple=True, default=(0,), show_default=True, help="Repeatable.")
@click.option("-p", "--param", "params", multiple=True, help="Hyper-parameter key=value (repeatable).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="Results folder (default ./results).")
@click.option("--suite", "suite_name", default="adhoc", show_default=True, help="Suite label for the records.")
@click.option("--feature", "features", multiple=True, help="Feature key to give the model (default: all).")
@click.option("--force", is_flag=True, help="Re-run even if a record exists.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
def run(model, dataset, seeds, params, device, results, suite_name, features, force, resume):
    """Train MODEL on DATASET (card's default protocol), evaluate, write run records."""
    from .data.cards import find_card
    from .data.prepare import prepare as _prepare
    from .paths import default_results_dir
    from .runner import ModelSpec, run_one

    spec = ModelSpec.resolve(model)
    given = _parse_params(params)
    spec.params(given)  # unknown parameter -> error before preparing anything
    ds = _prepare(find_card(dataset))
    results = results or default_results_dir()
    for seed in seeds:
        rec, path, status = run_one(spec, ds, params=given, seed=seed, device=device, results=results,
                                    suite=suite_name, force=force, feature_keys=list(features) or None,
                                    resume=resume)
        if status == "busy":
            click.echo(f"seed {seed}: another process is running this job ({path})")
            continue
        t = rec["metrics"]["test"]
        shown = "  ".join(f"{k}={t[k]:.4f}" for k in ("recall@10", "ndcg@10", "rmse") if k in t)
        click.echo(f"seed {seed}: {status}  {shown}  -> {path}")


# -- suites -----------------------------------------------------------------------------------
@main.group(cls=_Group)
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
    """Run what is missing in SUITE (existing records are skipped): hyper-parameter
    searches on validation first, then the chosen configurations on every seed."""
    from .suite import load_suite, run_suite

    s = load_suite(suite_path)
    counts = run_suite(s, only=list(only) or None, device=device, results=results, force=force, echo=click.echo,
                       backend=backend, workers=workers, address=address)
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
    if counts["failed"]:
        sys.exit(1)


@suite.command("status")
@click.argument("suite_path", type=click.Path(path_type=Path))
@click.option("--results", type=click.Path(path_type=Path), default=None)
def suite_status(suite_path, results):
    """Done / missing / failed jobs of SUITE."""
    from .suite import load_suite, status

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


# -- leaderboards -----------------------------------------------------------------------------
@main.group(cls=_Group)
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
    from . import leaderboard as lbm
    from .suite import load_suite

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


# Commands of other areas live in their own modules (each imports its heavy parts lazily).
from . import cli_board, cli_data, cli_models  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
