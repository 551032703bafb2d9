"""Data-layer commands: import, export, features.

Attached to the ``mmbench`` group defined in :mod:`mmbench.cli`; heavy imports stay inside
the commands."""
from __future__ import annotations

from pathlib import Path

import click

from .cli import _Group, main


def _prepared(dataset: str, mirror: str | None = None):
    from .data.cards import find_card
    from .data.prepare import prepare

    card = find_card(dataset)
    return card, prepare(card, mirror=mirror)


# -- import / export --------------------------------------------------------------------------
@main.command("import")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["mmrec", "recbole"]), required=True,
              help="Layout of FOLDER: MMRec (<name>.inter + x_label + *.npy) or RecBole atomic files.")
@click.option("--name", required=True, help="Dataset name for the new card (also the file stem looked for).")
@click.option("--positive-threshold", type=float, default=None,
              help="Ratings >= X are positives; lower ones (e.g. 0 = dislike) are dropped.")
@click.option("--force", is_flag=True, help="Replace an earlier import of the same name.")
def import_(folder, fmt, name, positive_threshold, force):
    """Make FOLDER (your own data) a dataset: writes a local card and prepares it."""
    from .data.exchange import import_dataset

    ds = import_dataset(fmt, folder, name, positive_threshold=positive_threshold, force=force)
    st = ds.stats
    sp = st["splits"]
    click.echo(f"imported {ds.name}: {st['users']} users, {st['items']} items, {st['interactions']} interactions "
               f"(train/valid/test {sp['train']['interactions']} / {sp['valid']['interactions']} / "
               f"{sp['test']['interactions']})")
    keys = ds.features.keys()
    if keys:
        click.echo("features: " + ", ".join(f"{k} ({ds.features.get(k).dim}-d)" for k in keys))
    from .paths import local_cards_dir

    click.echo(f"card: {local_cards_dir() / (ds.name + '.toml')}")


@main.command("export")
@click.argument("dataset")
@click.option("--to", "fmt", type=click.Choice(["mmrec", "recbole"]), required=True, help="Output layout.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write (must not exist).")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export(dataset, fmt, out, mirror, force):
    """Write prepared DATASET (its card's default protocol) as MMRec or RecBole files."""
    from .data.exchange import export_dataset

    _, ds = _prepared(dataset, mirror)
    path = export_dataset(ds, fmt, out, force=force)
    click.echo(f"wrote {ds.name} ({ds.stats['interactions']} interactions, {len(ds.features.keys())} features) "
               f"as {fmt} to {path}")


# -- features ---------------------------------------------------------------------------------
@main.group(cls=_Group)
def features():
    """Item features: list, extract with an encoder, build the card's derived ones."""


@features.command("list")
@click.option("-d", "--dataset", required=True, help="Dataset card name.")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
def features_list(dataset, mirror):
    """Features of DATASET: key, dimension, missing rows, fingerprint, origin."""
    _, ds = _prepared(dataset, mirror)
    store = ds.features
    keys = store.keys()
    if not keys:
        click.echo(f"{ds.name}: no features yet (mmbench features extract / build-defaults)")
        return
    for k in keys:
        f = store.get(k)
        origin = f.meta.get("encoder") or f.meta.get("source") or f.meta.get("kind", "")
        click.echo(f"{k:<32} {f.dim:>5}-d  missing {int((~f.mask).sum()):>6}/{len(f.mask)}  "
                   f"{f.fingerprint[:16]}  {origin}")


@features.command("extract")
@click.option("-d", "--dataset", required=True, help="Dataset card name.")
@click.option("-m", "--modality", required=True, type=click.Choice(["text", "image", "audio"]))
@click.option("-e", "--encoder", "encoder_name", required=True,
              help="Encoder: registered name, feature key or alias (minilm, efficientnet, logmel, mfcc).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N, mps.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Items per resumable batch.")
@click.option("--key", default=None, help="Feature key to store (default <modality>/<encoder name>).")
@click.option("--force", is_flag=True, help="Replace an existing feature of that key.")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
def features_extract(dataset, modality, encoder_name, device, batch_size, key, force, mirror):
    """Encode every item's MODALITY (from the card: text fields or media URLs) into the store.

    Batched and resumable: rerunning after an interruption continues with the next batch."""
    from .features.pipeline import extract, resolve_encoder

    card, ds = _prepared(dataset, mirror)
    enc = resolve_encoder(encoder_name, modality)
    feat, rep = extract(ds, card, modality, enc, key=key, force=force, device=device, batch_size=batch_size,
                        mirror=mirror)
    click.echo(f"{rep.key}: {rep.n_items} items, {rep.n_missing} missing, {feat.dim}-d; encoded {rep.n_encoded} "
               f"in {rep.seconds:.1f} s = {rep.items_per_s:.1f} items/s ({device})")
    click.echo(f"fingerprint {feat.fingerprint} -> {ds.path / 'features'}")


@features.command("build-defaults")
@click.option("-d", "--dataset", required=True, help="Dataset card name.")
@click.option("--no-text", is_flag=True, help="Skip the text encoder (derived features only).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--force", is_flag=True, help="Recompute features that exist.")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
def features_build_defaults(dataset, no_text, device, force, mirror):
    """The card's derived features ([derived]: e.g. genre multi-hot, KG) and, if it has [text], MiniLM text."""
    from .features.pipeline import build_derived, extract, resolve_encoder

    card, ds = _prepared(dataset, mirror)
    for f in build_derived(ds, card, force=force, mirror=mirror):
        click.echo(f"{f.key:<24} {f.dim:>5}-d  missing {int((~f.mask).sum())}/{len(f.mask)}  {f.fingerprint[:16]}")
    if not no_text and card.data.get("text"):
        enc = resolve_encoder("minilm", "text")
        if enc.key in ds.features and not force:
            f = ds.features.get(enc.key)
            click.echo(f"{f.key:<24} {f.dim:>5}-d  (exists)")
        else:
            f, rep = extract(ds, card, "text", enc, force=force, device=device, mirror=mirror)
            click.echo(f"{f.key:<24} {f.dim:>5}-d  missing {rep.n_missing}/{rep.n_items}  {f.fingerprint[:16]}  "
                       f"{rep.items_per_s:.1f} items/s")
