"""Test-time modality drop: one trained model evaluated again with a modality removed for a
seeded share of the items, without retraining.

A :class:`DropSpec` names what to drop, one at a time (a feature key such as
``text/all-MiniLM-L6-v2``, or a modality such as ``audio``: every key of it the model
reads), the shares p and a seed. The items dropped at share p are the first
``round(p * n_items)`` of one permutation of the items drawn by a generator seeded with the
spec's seed: the same items for every model and every run seed, and nested (those dropped
at 0.25 are among those dropped at 0.5). Items whose row was already missing stay missing.

The model scores inside its own test-time hook (``drop_modality``, which every model
reading content features has: :class:`~mmbench.models.ContentFeatures` switches the fitted
module's presence masks, and a model scoring through a structure built from the features,
such as FREEDOM's kNN item graph or ItemKNN-CBF's similarities, rebuilds it): within it the
model sees the rows as missing exactly as if the feature store's mask said so, and treats
them as it treats any missing row (a learned token, dropping the modality, or imputing it
from the others: :func:`missing_handling` says which, from the model's own declaration). A
model without the hook, or one that reads none of the keys, is skipped with the reason in
the block.

The block a final record gains (``robustness``): the spec (``keys``, ``shares``, ``seed``),
the evaluated ``split`` (test), ``missing_rows`` and either ``skipped`` (why the model has
no curve) or ``results``: per name, the feature keys dropped and, per share, how many
items were dropped and the test metrics of the protocol (means over users).
"""
from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

DROP_STREAM = 0xD809  # the dropped items' generator stream
DEFAULT_SHARES = (0.0, 0.25, 0.5, 1.0)
MISSING_LABELS = {"embed": "learned token", "drop": "dropped", "impute": "imputed from the other modalities"}


@dataclass(frozen=True)
class DropSpec:
    """What a robustness evaluation drops: ``keys`` (feature keys or modalities), each alone,
    for each share in ``shares``, the items drawn with ``seed``."""

    keys: tuple[str, ...]
    shares: tuple[float, ...] = DEFAULT_SHARES
    seed: int = 0

    def __post_init__(self):
        keys, shares = tuple(self.keys), tuple(float(p) for p in self.shares)
        if not keys or any(not k or k != k.strip() for k in keys) or len(set(keys)) != len(keys):
            raise ConfigError("robustness keys must be distinct, non-empty feature keys or modalities, "
                              f"got {list(keys)}")
        bad = [p for p in shares if not (math.isfinite(p) and 0.0 <= p <= 1.0)]
        if not shares or bad or len(set(shares)) != len(shares):
            raise ConfigError(f"robustness shares must be distinct numbers in [0, 1], got {list(self.shares)}",
                              hint="e.g. 0,0.25,0.5,1")
        if not 0 <= self.seed < 2 ** 63:
            raise ConfigError(f"robustness seed must be an integer in 0..2**63-1, got {self.seed}")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "shares", tuple(sorted(shares)))

    @staticmethod
    def parse_shares(text: str) -> tuple[float, ...]:
        """``'0,0.25,0.5,1'`` -> ``(0.0, 0.25, 0.5, 1.0)``; anything else is a ConfigError."""
        try:
            return tuple(float(p) for p in text.split(","))
        except ValueError:
            raise ConfigError(f"--drop-share {text!r} is not a comma-separated list of numbers",
                              hint="e.g. --drop-share 0,0.25,0.5,1") from None

    def as_dict(self) -> dict:
        return {"keys": list(self.keys), "shares": list(self.shares), "seed": self.seed}

    def check(self, available: list[str], where: str | None = None) -> None:
        """Every name must be one of ``available`` feature keys or the modality of one."""
        modalities = {k.split("/", 1)[0] for k in available}
        for name in self.keys:
            if name not in available and name not in modalities:
                raise ConfigError(f"cannot drop {name!r}: it is neither a feature key nor a modality of the data "
                                  f"(features: {', '.join(sorted(available)) or 'none'})", where=where,
                                  hint="name a key from `mmbench features list`, or its modality (e.g. text)")

    def matches(self, block: dict | None) -> bool:
        """Whether a record's ``robustness`` block was made with this spec."""
        return isinstance(block, dict) and {k: block.get(k) for k in ("keys", "shares", "seed")} == self.as_dict()


def dropped_items(n_items: int, share: float, seed: int) -> np.ndarray:
    """The items dropped at ``share`` (sorted indices): a prefix of one seeded permutation."""
    order = np.random.default_rng([int(seed), DROP_STREAM]).permutation(n_items)
    return np.sort(order[:int(math.floor(share * n_items + 0.5))])


def keys_for(name: str, read: list[str]) -> list[str]:
    """The keys among ``read`` that ``name`` drops: itself, or every key of the modality it names."""
    return [k for k in read if k == name or k.split("/", 1)[0] == name]


def missing_handling(model_cls, params: dict) -> str:
    """How a model treats a missing row, from its own declaration: its ``missing`` parameter
    (learned token or dropped), else its ``missing_rows`` class attribute, else the first
    sentence of its docstring about missing rows."""
    if "missing" in params:
        mode = params["missing"]
        return f"{MISSING_LABELS.get(mode, mode)} (missing = {mode!r})"
    if getattr(model_cls, "missing_rows", None):
        return model_cls.missing_rows
    doc = " ".join((model_cls.__doc__ or "").replace("``", "`").split())
    said = next((s for s in re.split(r"(?<=[.;])\s+", doc) if "missing" in s.lower()), None)
    if said is None:
        return "not stated by the model"
    return "as documented: " + (said if len(said) <= 200 else said[:199] + "…")


def evaluate_drops(model, spec: DropSpec, dataset, protocol, *, device: str, params: dict, read: list[str]) -> dict:
    """The ``robustness`` block of a fitted ``model`` that reads the feature keys ``read``: the
    protocol's ranking metrics on the test split for every name and share of ``spec`` (see
    the module doc)."""
    from .evaluate.ranking import evaluate_ranking

    block = {**spec.as_dict(), "split": "test", "missing_rows": missing_handling(type(model), params)}
    if not read or getattr(model, "drop_modality", None) is None:
        block["skipped"] = (f"{type(model).__name__} reads no item content" if not read else
                            f"{type(model).__name__} has no test-time drop hook (drop_modality)")
        return block
    results, skipped = [], []
    for name in spec.keys:
        keys = keys_for(name, read)
        if not keys:
            skipped.append({"key": name, "reason": f"the model does not read it (it reads {', '.join(read)})"})
            continue
        rows = []
        for share in spec.shares:
            items = dropped_items(dataset.n_items, share, spec.seed)
            with contextlib.ExitStack() as stack:
                for k in keys:
                    stack.enter_context(model.drop_modality(k, items))
                res = evaluate_ranking(model.score, dataset, "test", protocol.ranking_metrics, device=device,
                                       mask_valid_at_test=protocol.mask_valid_at_test, beyond_accuracy=False)
            rows.append({"share": share, "dropped": int(len(items)),
                         "metrics": {m: round(float(v), 8) for m, v in sorted(res.metrics.items())}})
        results.append({"key": name, "features": keys, "shares": rows})
    block["results"] = results
    if skipped:
        block["skipped_keys"] = skipped
    return block


def robustness_lines(block: dict | None, metric: str) -> list[str]:
    """One line per dropped name of a record's ``robustness`` block: ``metric`` at each share."""
    if not block:
        return []
    if "skipped" in block:
        return [f"robustness: skipped ({block['skipped']})"]
    lines = [f"drop {r['key']}: " + "  ".join(f"p={s['share']:g} {s['metrics'].get(metric, float('nan')):.4f}"
                                                for s in r["shares"]) for r in block["results"]]
    return lines + [f"drop {s['key']}: skipped ({s['reason']})" for s in block.get("skipped_keys", [])]


def curves(blocks: list[dict], spec: DropSpec, metric: str) -> dict[str, list[list[float]]]:
    """Per dropped name, ``metric`` at each share of ``spec`` over the blocks made with it
    (one list of values per share, one value per block): what a board averages over seeds.
    Names a model skipped, and blocks made with another spec, are left out."""
    out: dict[str, list[list[float]]] = {}
    for b in blocks:
        if not spec.matches(b):
            continue
        for r in b.get("results", []):
            vals = out.setdefault(r["key"], [[] for _ in spec.shares])
            for i, s in enumerate(r["shares"]):
                if metric in s["metrics"]:
                    vals[i].append(float(s["metrics"][metric]))
    return out
