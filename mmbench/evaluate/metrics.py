"""Ranking metrics computed on a hit matrix, one short function each.

``hits``: float tensor (users, K) with 1 where the item ranked at position j is relevant;
``n_rel``: float tensor (users,) with the number of relevant items of each user.
Definitions follow ranx (binary relevance): MAP@k divides by the number of relevant
items, NDCG@k's ideal DCG ranks min(n_rel, k) relevant items first.
"""
from __future__ import annotations

import re

import torch

_NAME = re.compile(r"^([a-z_]+)@(\d+)$")


def _discounts(k: int, device) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float64))


def recall(hits, n_rel, k):
    return hits[:, :k].sum(1) / n_rel


def precision(hits, n_rel, k):
    return hits[:, :k].sum(1) / k


def hit_rate(hits, n_rel, k):
    return (hits[:, :k].sum(1) > 0).to(hits.dtype)


def mrr(hits, n_rel, k):
    h = hits[:, :k]
    ranks = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)
    return (h / ranks).max(1).values if h.shape[1] else torch.zeros_like(n_rel)


def ndcg(hits, n_rel, k):
    h = hits[:, :k]
    disc = _discounts(h.shape[1], h.device).to(h.dtype)
    dcg = (h * disc).sum(1)
    ideal = torch.cumsum(disc, 0)
    n_ideal = torch.clamp(n_rel, max=h.shape[1]).long()
    idcg = ideal[(n_ideal - 1).clamp(min=0)]
    return torch.where(n_ideal > 0, dcg / idcg, torch.zeros_like(dcg))


def average_precision(hits, n_rel, k):
    h = hits[:, :k]
    ranks = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)
    prec_at = torch.cumsum(h, 1) / ranks
    return (prec_at * h).sum(1) / n_rel


RANKING_METRICS = {
    "recall": recall,
    "precision": precision,
    "hit": hit_rate,
    "mrr": mrr,
    "ndcg": ndcg,
    "map": average_precision,
}
ALIASES = {"hit_rate": "hit", "hr": "hit", "p": "precision", "r": "recall", "ap": "map"}
RATING_METRICS = ("rmse", "mae")
LOWER_IS_BETTER = {"rmse", "mae"}


def parse_metric(name: str) -> tuple[str, int | None]:
    """``'NDCG@10'`` -> ``('ndcg', 10)``; ``'rmse'`` -> ``('rmse', None)``."""
    from ..errors import ConfigError

    low = name.strip().lower()
    if low in RATING_METRICS:
        return low, None
    m = _NAME.match(low)
    if not m:
        raise ConfigError(f"metric {name!r} is not 'name@k' or a rating metric",
                          hint=f"use one of {', '.join(RANKING_METRICS)} with @k, or {', '.join(RATING_METRICS)}")
    base, k = ALIASES.get(m.group(1), m.group(1)), int(m.group(2))
    if base not in RANKING_METRICS:
        raise ConfigError(f"unknown metric {m.group(1)!r}", hint=f"known: {', '.join(RANKING_METRICS)}")
    if k < 1:
        raise ConfigError(f"metric {name!r}: k must be >= 1")
    return base, k


def canonical(name: str) -> str:
    base, k = parse_metric(name)
    return base if k is None else f"{base}@{k}"


def higher_is_better(name: str) -> bool:
    return parse_metric(name)[0] not in LOWER_IS_BETTER


def compute(names: list[str], hits: torch.Tensor, n_rel: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-user values of every ranking metric in ``names`` (canonical names)."""
    out = {}
    for name in names:
        base, k = parse_metric(name)
        if k is None:
            continue
        out[f"{base}@{k}"] = RANKING_METRICS[base](hits, n_rel, k)
    return out
