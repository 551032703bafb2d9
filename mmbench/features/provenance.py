"""Where a feature comes from, as its card declares it, and whether it leaks the held-out split.

A card's ``[provenance]`` table declares, per feature key, where the feature comes from:
``source`` (words), ``behaviour`` (derived from user behaviour: tags, reviews, co-listens)
and ``interactions`` (``"none"``, ``"train"`` or ``"all"``: which interactions it was derived
from). A bare input name declares an input instead (``text``: the card's ``[text]`` table; a
``[media]`` modality), inherited by every feature extracted from it under a key the card
does not declare. A feature *leaks* when it was derived from interactions beyond the
training split (``"all"``: the held-out ones included); a shipped feature declared
``"train"`` leaks too in a dataset split otherwise than the card's default, whose training
split it was derived from.

The declaration is stored with the feature (its ``meta.json`` and the dataset's manifest),
so every run record carries it (``feature_provenance``). A feature the card does not
declare gets an explicit unknown provenance, never a silent "clean".
"""
from __future__ import annotations

UNKNOWN = {"source": "not declared by the card", "behaviour": None, "interactions": "unknown", "leaks": None}


def declared(card, key: str, reads: str | None = None, *, resplit: bool = False) -> dict:
    """The provenance of feature ``key`` of ``card`` (extracted from input ``reads``, if it was),
    with its ``leaks`` flag; :data:`UNKNOWN` when the card declares neither. ``resplit``: the
    dataset is not split as the card's default is."""
    table = card.data.get("provenance", {})
    decl = table.get(key) or (table.get(reads) if reads else None)
    if decl is None:
        return dict(UNKNOWN)
    out = {k: decl[k] for k in ("source", "behaviour", "interactions")}
    out["leaks"] = decl["interactions"] == "all" or (decl["interactions"] == "train" and resplit)
    if decl["interactions"] == "train" and resplit:
        out["note"] = "derived from the training split of the card's default protocol, not of this one"
    return out


def resplit(ds, card) -> bool:
    """Whether the prepared ``ds`` is filtered or split otherwise than ``card``'s default protocol."""
    return ds.manifest.get("filters") != card.filters or ds.manifest.get("split") != card.split


def of_feature(feature) -> dict:
    """The provenance a stored feature carries (:data:`UNKNOWN` for one stored without it)."""
    return dict(feature.meta.get("provenance") or UNKNOWN)


def leaking(features: dict) -> list[str]:
    """The keys of ``features`` (key -> stored Feature) derived from interactions beyond the
    training split: what a run record lists as ``features_leak``."""
    return sorted(k for k, f in features.items() if of_feature(f)["leaks"])


def card_lines(card) -> list[str]:
    """``key: provenance`` for each feature the card names (shipped, derived, text variants)
    and each input it renders (``text``, media), declared or not."""
    data = card.data
    keys = sorted(set(data.get("features", {})) | set(data.get("derived", {}))
                  | set(data.get("text", {}).get("variants", {})))
    inputs = (["text"] if "text" in data else []) + sorted(data.get("media", {}))
    return [f"{key}: {describe(declared(card, key))}" for key in keys + inputs]


def describe(prov: dict) -> str:
    """One line for people: where the feature comes from, and a warning when it leaks."""
    if prov["interactions"] == "unknown":
        return "provenance unknown (not declared by the card)"
    kind = "user behaviour" if prov["behaviour"] else "no user behaviour"
    text = f"{prov['source']} ({kind}; interactions: {prov['interactions']})"
    if prov["leaks"]:
        text += " -- LEAKS: derived from interactions beyond the training split, the held-out ones included"
    return text
