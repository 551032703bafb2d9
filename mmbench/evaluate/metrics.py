"""Ranking metrics computed on a hit matrix, one short function each.

``hits``: float tensor (users, K) with 1 where the item ranked at position j is relevant;
``n_rel``: float tensor (users,) with the number of relevant items of each user.
Definitions follow ranx (binary relevance): MAP@k divides by the number of relevant
items, NDCG@k's ideal DCG ranks min(n_rel, k) relevant items first.
"""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=1024)
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
    """Per-user values of every ranking metric in ``names`` (canonical names).

    The same values, bit for bit, as calling each metric function above, with the work they
    share done once at the largest k (discounted gains, precision at each rank, reciprocal
    ranks) and sliced for every k: each value is still the same sum over the same elements.
    """
    wanted = []
    for name in names:
        base, k = parse_metric(name)
        if k is not None:
            wanted.append((f"{base}@{k}", base, k))
    if not wanted:
        return {}
    maxk = min(max(k for _, _, k in wanted), hits.shape[1])
    h = hits[:, :maxk]
    bases = {b for _, b, _ in wanted}
    ranks = torch.arange(1, maxk + 1, device=h.device, dtype=h.dtype)
    gains = ideal = None
    if "ndcg" in bases:
        disc = _discounts(maxk, h.device).to(h.dtype)
        gains, ideal = h * disc, torch.cumsum(disc, 0)
    ap_terms = torch.cumsum(h, 1) / ranks * h if "map" in bases else None
    rr = h / ranks if "mrr" in bases else None
    out = {}
    for key, base, k_asked in wanted:
        k = min(k_asked, maxk)  # a ranking shorter than k (tiny catalogs) is cut as hits[:, :k] is
        if k == 0:  # an empty ranking (no item): the per-metric functions handle it
            out[key] = RANKING_METRICS[base](hits, n_rel, k_asked)
        elif base in ("recall", "precision", "hit"):
            found = h[:, :k].sum(1)
            out[key] = found / n_rel if base == "recall" else found / k_asked if base == "precision" else \
                (found > 0).to(h.dtype)
        elif base == "ndcg":
            dcg = gains[:, :k].sum(1)
            n_ideal = torch.clamp(n_rel, max=k).long()
            idcg = ideal[(n_ideal - 1).clamp(min=0)]
            out[key] = torch.where(n_ideal > 0, dcg / idcg, torch.zeros_like(dcg))
        elif base == "mrr":
            out[key] = rr[:, :k].max(1).values
        elif base == "map":
            out[key] = ap_terms[:, :k].sum(1) / n_rel
    return out
