"""Features of a prepared dataset from its card: encoders over text/media, derived recipes.

Every feature written here also lands in the dataset's ``manifest.json`` (``features``:
key -> fingerprint), so the manifest names every matrix a run can be given.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError, RegistryError
from ..paths import data_home

#: short names accepted by ``-e`` besides the registered entry-point names and feature keys
ALIASES = {
    "minilm": "text/all-MiniLM-L6-v2",
    "efficientnet": "image/efficientnet-lite0",
    "resnet50": "image/resnet50-torchvision",
    "logmel": "audio/logmel-stats",
    "mfcc": "audio/mfcc-stats",
}


def _builtin() -> dict[str, str]:
    from .encoders import BUILTIN_ENCODERS

    return dict(BUILTIN_ENCODERS)


def encoder_names() -> list[str]:
    from .. import registry

    return sorted(set(registry.entries("encoders")) | set(_builtin()) | set(ALIASES))


def resolve_encoder(name: str, modality: str | None = None, **options):
    """An encoder instance from a registered name, a feature key, its model name or an alias."""
    from .. import registry
    from .encoders.base import load_class

    entries = registry.entries("encoders")
    builtin = _builtin()
    low = name.lower()
    by_name = {k.lower(): k for k in entries}
    short = low.split("/", 1)[-1]  # "text/all-MiniLM-L6-v2" -> entry point "all-MiniLM-L6-v2"
    if low in by_name or (short in by_name and "/" in low):
        cls = entries[by_name.get(low) or by_name[short]].load()
    else:
        key = ALIASES.get(low) or next((k for k in builtin if low in (k.lower(), k.split("/", 1)[1].lower())), None)
        if key is None:
            import difflib

            close = difflib.get_close_matches(name, encoder_names(), n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(map(repr, close))}?" if close else \
                f"known: {', '.join(encoder_names())}"
            raise RegistryError(f"unknown encoder {name!r}", hint=hint)
        ep = by_name.get(key.split("/", 1)[1].lower())
        cls = entries[ep].load() if ep else load_class(builtin[key])
    if modality is not None and getattr(cls, "modality", None) != modality:
        raise ConfigError(f"encoder {name!r} encodes {cls.modality}, not {modality}",
                          hint=f"pick a {modality} encoder, or -m {cls.modality}")
    return cls(**options)


@dataclass
class ExtractReport:
    key: str
    n_items: int
    n_encoded: int  # rows encoded in this run (not resumed from the cache, with input)
    n_missing: int
    seconds: float

    @property
    def items_per_s(self) -> float:
        return self.n_encoded / self.seconds if self.seconds > 0 else 0.0


def _source_folder(ds, card, mirror) -> tuple:
    from ..data.prepare import resolve_source

    src, folder = resolve_source(card, ds.manifest["source"]["name"], mirror)
    return card.for_source(src), folder


def text_variants(card) -> list[str]:
    """The feature keys of the card's text variants (``[text.variants]``)."""
    return sorted(card.data.get("text", {}).get("variants", {}))


def _variant_folder(ds, card, key: str, mirror) -> Path:
    """The folder holding text variant ``key``'s file: its side source's, else the dataset source's."""
    from ..data.prepare import side_source_folder

    side = card.data["text"]["variants"][key].get("side_source")
    if side is None:
        return _source_folder(ds, card, mirror)[1]
    return side_source_folder(card, side, mirror, needed_by=f"text variant {key!r}")


def inputs_for(ds, card, modality: str, *, key: str | None = None, mirror=None,
               progress: bool = True) -> tuple[list, dict[int, str]]:
    """Each item's input for an encoder reading ``modality``: the card's text (the text variant
    ``key`` when the card declares one of that key) or media files."""
    from .inputs import item_media, item_texts

    if modality == "text":
        if key in text_variants(card):
            return item_texts(ds, card, key, _variant_folder(ds, card, key, mirror)), {}
        return item_texts(ds, card), {}
    view, folder = _source_folder(ds, card, mirror)
    return item_media(ds, view, modality, folder=folder, mirror=mirror, progress=progress)


def extract(ds, card, modality: str, encoder, *, key: str | None = None, force: bool = False,
            device: str = "cpu", batch_size: int = 64, mirror=None, progress: bool = True
            ) -> tuple[object, ExtractReport]:
    """Encode every item's ``modality`` input with ``encoder`` into ``ds``'s feature store, with the
    provenance the card declares for ``key`` (or for the input it reads)."""
    from ..data.prepare import record_features
    from .extract import extract_features
    from .provenance import declared, resplit
    from .store import FeatureStore

    key = FeatureStore.check_key(key or encoder.key)
    if key.split("/", 1)[0] != modality:
        raise ConfigError(f"feature key {key!r} does not start with the modality {modality!r}")
    store = ds.features
    if key in store and not force:
        src = store.get(key).meta.get("source") or store.get(key).meta.get("encoder", "")
        raise DataError(f"feature {key!r} already exists" + (f" (from {src})" if src else ""), where=str(ds.path),
                        hint="pass --key <modality>/<name> to keep both, or --force to replace it")
    reads = getattr(encoder, "reads", modality)
    inputs, failed = inputs_for(ds, card, reads, key=key, mirror=mirror, progress=progress)
    t0 = time.perf_counter()
    feat = extract_features(store, encoder, inputs, key=key, batch_size=batch_size, device=device,
                            progress=progress, cache_dir=data_home() / "cache" / "features" / ds.name,
                            provenance=declared(card, key, reads, resplit=resplit(ds, card)))
    seconds = time.perf_counter() - t0
    record_features(ds)
    meta = feat.meta
    n_with_input = sum(x is not None for x in inputs)
    encoded = max(0, n_with_input - int(meta.get("n_resumed_rows", 0)))
    return feat, ExtractReport(key, len(inputs), encoded, int((~feat.mask).sum()), seconds)


def build_derived(ds, card, *, keys: list[str] | None = None, force: bool = False, mirror=None) -> list:
    """Compute the card's ``[derived]`` features (all, or ``keys``) into ``ds``'s store."""
    from ..data.prepare import record_features
    from .derived import build
    from .provenance import declared, resplit

    recipes = card.data.get("derived", {})
    if keys:
        unknown = [k for k in keys if k not in recipes]
        if unknown:
            raise ConfigError(f"the card has no derived feature {unknown[0]!r} (has: {', '.join(recipes) or 'none'})",
                              where=str(card.path))
    view, folder = _source_folder(ds, card, mirror)
    store = ds.features
    out = []
    for key in sorted(keys or recipes):
        if key in store and not force:
            out.append(store.get(key))
            continue
        values, mask, meta = build(ds, view, key, dict(recipes[key]), Path(folder))
        out.append(store.put(key, values, mask, meta={**meta, "source": "derived", "card": card.name,
                                                      "provenance": declared(card, key, resplit=resplit(ds, card))}))
    record_features(ds)
    return out
