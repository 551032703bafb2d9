"""Feature commands: ``features list/extract/build-defaults``."""
from __future__ import annotations


import click

from .app import Group


from .datasets import _prepared


@click.group(cls=Group)
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
@click.option("-m", "--modality", required=True,
              type=click.Choice(["text", "image", "audio", "text_tokens", "image_raw"]))
@click.option("-e", "--encoder", "encoder_name", required=True,
              help="Encoder: registered name, feature key or alias (minilm, efficientnet, logmel, mfcc).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N, mps.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Items per resumable batch.")
@click.option("--key", default=None, help="Feature key to store (default <modality>/<encoder name>); a text variant's key "
              "([text.variants] of the card) encodes that variant's text.")
@click.option("--force", is_flag=True, help="Replace an existing feature of that key.")
@click.option("--mirror", default=None, envvar="MMBENCH_MIRROR", help="Directory or URL replacing the origin.")
def features_extract(dataset, modality, encoder_name, device, batch_size, key, force, mirror):
    """Encode every item's MODALITY (from the card: text fields or media URLs) into the store.

    Batched and resumable: rerunning after an interruption continues with the next batch."""
    from ..features.pipeline import extract, resolve_encoder

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
    """The card's derived features ([derived]: e.g. genre multi-hot, KG) and, if it has [text], MiniLM
    of its text and of each text variant ([text.variants])."""
    from ..features.pipeline import build_derived, extract, resolve_encoder, text_variants

    card, ds = _prepared(dataset, mirror)
    for f in build_derived(ds, card, force=force, mirror=mirror):
        click.echo(f"{f.key:<24} {f.dim:>5}-d  missing {int((~f.mask).sum())}/{len(f.mask)}  {f.fingerprint[:16]}")
    if not no_text and card.data.get("text"):
        enc = resolve_encoder("minilm", "text")
        for key in [enc.key] + text_variants(card):
            if key in ds.features and not force:
                click.echo(f"{key:<24} {ds.features.get(key).dim:>5}-d  (exists)")
                continue
            f, rep = extract(ds, card, "text", enc, key=key, force=force, device=device, mirror=mirror)
            click.echo(f"{f.key:<24} {f.dim:>5}-d  missing {rep.n_missing}/{rep.n_items}  {f.fingerprint[:16]}  "
                       f"{rep.items_per_s:.1f} items/s")
