"""Dataset commands: ``datasets list/info``, ``prepare``, ``import``, ``export``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .app import Group


class FormatName(click.ParamType):
    """A registered dataset format that can ``need`` ("detect": import, "write": export). Checked
    when the command runs, so ``--help`` imports no format plugin."""

    name = "format"

    def __init__(self, need: str):
        self.need = need

    def convert(self, value, param, ctx):
        from ..data.formats import get_format
        from ..errors import MMBenchError

        try:
            get_format(value, self.need)
        except MMBenchError as e:
            self.fail(str(e), param, ctx)
        return value


@click.group(cls=Group)
def datasets():
    """Dataset cards: list and inspect."""


@datasets.command("list")
def datasets_list():
    """Every dataset card found (built-in, plugins, imported)."""
    from tabulate import tabulate

    from ..data.cards import card_summary, list_cards

    rows = [card_summary(c) for c in list_cards()]
    click.echo(tabulate([[r["name"], r["version"], ", ".join(r["modalities"]), r["license"][:60], r["source"]]
                         for r in rows], headers=["name", "version", "modalities", "license", "source"]))


@datasets.command("info")
@click.argument("name")
def datasets_info(name):
    """The card of NAME, its licence, and its statistics once prepared."""
    from ..data.cards import find_card, source_label
    from ..data.prepare import prepare_dir_for
    from ..features.provenance import card_lines
    from ..io import read_json

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
    for line in card_lines(card):
        click.echo(f"provenance: {line}")
    if card.data.get("stats"):
        click.echo("published:  " + ", ".join(f"{k} {v}" for k, v in card.data["stats"].items()))
    for src in card.sources:
        d = prepare_dir_for(card, card.filters, card.split, src["name"])
        if (d / "manifest.json").is_file():
            man = read_json(d / "manifest.json")
            st = man["stats"]
            click.echo(f"prepared:   {d}")
            click.echo(f"fingerprint {man['fingerprint']}")
            click.echo(f"stats:      {st['users']} users, {st['items']} items, {st['interactions']} interactions, "
                       f"density {st['density']}")
            for k in ("train", "valid", "test"):
                v = st["splits"][k]
                click.echo(f"  {k:<6} {v['interactions']} interactions, {v['users']} users, {v['items']} items")
            leaks = {k for k, p in man.get("feature_provenance", {}).items() if p.get("leaks")}
            for key, fp in sorted(man.get("features", {}).items()):
                click.echo(f"feature:    {key}  {fp[:16]}" + ("  LEAKS (derived from interactions beyond train)"
                                                               if key in leaks else ""))
            break
    else:
        click.echo("not prepared yet: run `mmbench prepare " + card.name + "`")


@click.command()
@click.argument("name")
@click.option("--source", default=None, help="Which of the card's sources to use (default: first that works).")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
@click.option("--force", is_flag=True, help="Rebuild even if prepared.")
def prepare(name, source, mirror, force):
    """Prepare dataset NAME: read, filter, split, fingerprint (into $MMBENCH_HOME)."""
    from ..data.cards import find_card
    from ..data.prepare import prepare as _prepare

    card = find_card(name)
    ds = _prepare(card, source=source, mirror=mirror, force=force)
    st = ds.stats
    click.echo(f"{ds.name} v{ds.version}: {st['users']} users, {st['items']} items, "
               f"{st['interactions']} interactions -> {ds.path}")
    sp = st["splits"]
    click.echo(f"split train/valid/test: {sp['train']['interactions']} / {sp['valid']['interactions']} / "
               f"{sp['test']['interactions']}; fingerprint {ds.fingerprint}")




def _prepared(dataset: str, mirror: str | None = None):
    from ..data.cards import find_card
    from ..data.prepare import prepare

    card = find_card(dataset)
    return card, prepare(card, mirror=mirror)


@click.command("import")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=FormatName("detect"), required=True,
              help="Layout of FOLDER: MMRec (<name>.inter + x_label + *.npy) or RecBole atomic files.")
@click.option("--name", required=True, help="Dataset name for the new card (also the file stem looked for).")
@click.option("--positive-threshold", type=float, default=None,
              help="Ratings >= X are positives; lower ones (e.g. 0 = dislike) are dropped.")
@click.option("--force", is_flag=True, help="Replace an earlier import of the same name.")
def import_(folder, fmt, name, positive_threshold, force):
    """Make FOLDER (your own data) a dataset: writes a local card and prepares it."""
    from ..data.exchange import import_dataset

    ds = import_dataset(fmt, folder, name, positive_threshold=positive_threshold, force=force)
    st = ds.stats
    sp = st["splits"]
    click.echo(f"imported {ds.name}: {st['users']} users, {st['items']} items, {st['interactions']} interactions "
               f"(train/valid/test {sp['train']['interactions']} / {sp['valid']['interactions']} / "
               f"{sp['test']['interactions']})")
    keys = ds.features.keys()
    if keys:
        click.echo("features: " + ", ".join(f"{k} ({ds.features.get(k).dim}-d)" for k in keys))
    from ..paths import local_cards_dir

    click.echo(f"card: {local_cards_dir() / (ds.name + '.toml')}")


@click.command("export")
@click.argument("dataset")
@click.option("--to", "fmt", type=FormatName("write"), required=True, help="Output layout.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write (must not exist).")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export(dataset, fmt, out, mirror, force):
    """Write prepared DATASET (its card's default protocol) as MMRec or RecBole files."""
    from ..data.exchange import export_dataset

    _, ds = _prepared(dataset, mirror)
    path = export_dataset(ds, fmt, out, force=force)
    click.echo(f"wrote {ds.name} ({ds.stats['interactions']} interactions, {len(ds.features.keys())} features) "
               f"as {fmt} to {path}")
