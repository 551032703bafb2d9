"""Every metric is one registry entry: its function, direction, kind and a one-line doc.

Whoever needs a fact about a metric (the evaluation, model selection, early stopping,
leaderboards, ``compare``) asks the entry: :func:`get` finds it from any form of a name
(``ndcg``, ``NDCG@10``, ``recall@20/tail``, ``rmse``, ``coverage@20``). Kinds, and what
the function of each receives:

- ``ranking`` (``name@k``, optionally restricted to an item group: ``recall@20/tail``):
  ``fn(batch, k) -> Tensor[users]`` on a :class:`Batch` of ranked lists.
- ``beyond-accuracy`` (``name@k`` at the ranking depth; every evaluation adds them): per
  user like a ranking metric (novelty), or, with ``per_user=False``, one value from how
  often each item was recommended: ``fn(counts) -> float`` (coverage, Gini).
- ``rating`` (no ``@k``): ``fn(err, user_of, n_per_user) -> (overall, per-user values)``
  on the prediction errors of the rated pairs.
- ``item-group`` (a ``/name`` suffix): ``fn(train_popularity) -> bool mask over items``.

A ranking metric is written once against :class:`Batch`, which computes what metrics
share lazily at the largest k asked (hits per cut-off, discounted gains, ideal DCG,
reciprocal ranks, precision at each rank): one metric alone and many in one pass run the
same code, so they give the same bits. Definitions follow ranx (binary relevance): MAP@k
divides by the number of relevant items, NDCG@k's ideal DCG ranks min(n_rel, k) relevant
items first.

Built-in metrics live here. Third-party ones come from the ``mmbench.metrics`` entry-point
group (each entry point names a :class:`Metric` of kind ranking or item-group, called as
its entry point); they are looked up the first time an unknown name is asked for, never at
import. Nothing here imports torch: a batch's shared tensors are made from its own.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError, RegistryError

KINDS = ("ranking", "rating", "beyond-accuracy", "item-group")
PLUGIN_KINDS = ("ranking", "item-group")
_NAME = re.compile(r"^([a-z][a-z0-9_-]*)(?:@(\d+))?$")
TAIL_HEAD_SHARE = 0.2  # the head is the top 20% of items by training popularity; the rest is the tail


@dataclass(frozen=True)
class Metric:
    """A metric's facts, declared once (see the module doc for ``fn`` of each kind)."""

    name: str
    kind: str
    higher_is_better: bool
    doc: str
    fn: Callable
    per_user: bool = True  # False: one value for the whole evaluation (coverage, Gini)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"metric {self.name!r}: kind {self.kind!r} is not one of {list(KINDS)}")


class Batch:
    """One batch of ranked lists, and what metrics share, computed on first use.

    ``hits``: float (users, K), 1 where the item ranked at position j is relevant;
    ``n_rel``: float (users,), relevant items per user; ``top``: the item ids (users, K)
    and ``self_info``: -log2 of each item's training popularity share, when the evaluation
    has them. Everything is cut at ``width`` = min(largest k asked, K).
    """

    def __init__(self, hits, n_rel, width: int | None = None, *, top=None, self_info=None):
        self.width = hits.shape[1] if width is None else min(width, hits.shape[1])
        self.hits = hits[:, :self.width]
        self.n_rel, self.self_info = n_rel, self_info
        self.top = None if top is None else top[:, :self.width]
        self._found: dict[int, object] = {}

    def cut(self, k: int) -> int:
        """k, or the list length when the ranking is shorter (tiny catalogs)."""
        return min(k, self.width)

    def found(self, k: int):
        """Relevant items among the top k of each user."""
        k = self.cut(k)
        if k not in self._found:
            self._found[k] = self.hits[:, :k].sum(1)
        return self._found[k]

    def _arange(self, start: int, dtype):
        import torch

        return torch.arange(start, start + self.width, device=self.hits.device, dtype=dtype)

    @functools.cached_property
    def ranks(self):
        return self._arange(1, self.hits.dtype)

    @functools.cached_property
    def discounts(self):
        """1 / log2(rank + 1)."""
        import torch

        return (1.0 / torch.log2(self._arange(2, torch.float64))).to(self.hits.dtype)

    @functools.cached_property
    def gains(self):
        return self.hits * self.discounts

    @functools.cached_property
    def ideal_dcg(self):
        """DCG of i relevant items ranked first, at index i - 1."""
        return self.discounts.cumsum(0)

    @functools.cached_property
    def reciprocal_ranks(self):
        return self.hits / self.ranks

    @functools.cached_property
    def hit_precisions(self):
        """Precision at each rank that holds a relevant item, 0 elsewhere."""
        return self.hits.cumsum(1) / self.ranks * self.hits

    def compute(self, names: list[str]) -> dict:
        """Per-user values of the metrics ``names`` (keyed by canonical name)."""
        out = {}
        for name in names:
            base, k = parse_metric(name)
            m = get(base)
            if k is None or not m.per_user:
                raise ConfigError(f"metric {name!r} is not computed per user from ranked lists")
            out[f"{base}@{k}"] = m.fn(self, k)
        return out


def compute(names: list[str], hits, n_rel, *, top=None, self_info=None) -> dict:
    """Per-user values of every metric in ``names`` on one batch, shared work done once."""
    if not names:
        return {}
    width = max(parse_metric(n)[1] or 0 for n in names)
    return Batch(hits, n_rel, width, top=top, self_info=self_info).compute(names)


# -- built-in metrics -----------------------------------------------------------------------------
def _recall(b: Batch, k: int):
    return b.found(k) / b.n_rel


def _precision(b: Batch, k: int):
    return b.found(k) / k


def _hit(b: Batch, k: int):
    return (b.found(k) > 0).to(b.hits.dtype)


def _mrr(b: Batch, k: int):
    k = b.cut(k)
    return b.reciprocal_ranks[:, :k].max(1).values if k else b.n_rel.new_zeros(b.n_rel.shape)


def _ndcg(b: Batch, k: int):
    k = b.cut(k)
    dcg = b.gains[:, :k].sum(1)
    n_ideal = b.n_rel.clamp(max=k).long()
    idcg = b.ideal_dcg[(n_ideal - 1).clamp(min=0)]
    return (dcg / idcg).where(n_ideal > 0, dcg.new_zeros(()))


def _map(b: Batch, k: int):
    return b.hit_precisions[:, :b.cut(k)].sum(1) / b.n_rel


def _novelty(b: Batch, k: int):
    return b.self_info[b.top[:, :b.cut(k)]].mean(1)


def _coverage(counts: np.ndarray) -> float:
    return float((counts > 0).mean())


def gini(counts: np.ndarray) -> float:
    """Gini index of how recommendations spread over items (0 = even, 1 = one item)."""
    x = np.sort(counts.astype(np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    idx = np.arange(1, n + 1)
    return float(((2 * idx - n - 1) * x).sum() / (n * x.sum()))


def _rmse(err: np.ndarray, user_of: np.ndarray, n_per_user: np.ndarray):
    se = np.bincount(user_of, weights=err ** 2, minlength=len(n_per_user)) / n_per_user
    return float(np.sqrt(np.mean(err ** 2))), np.sqrt(se)


def _mae(err: np.ndarray, user_of: np.ndarray, n_per_user: np.ndarray):
    ae = np.bincount(user_of, weights=np.abs(err), minlength=len(n_per_user)) / n_per_user
    return float(np.mean(np.abs(err))), ae


def _cold(train_popularity: np.ndarray) -> np.ndarray:
    return np.asarray(train_popularity) == 0


def _tail(train_popularity: np.ndarray) -> np.ndarray:
    pop = np.asarray(train_popularity)
    head = np.argsort(-pop, kind="stable")[:int(np.ceil(TAIL_HEAD_SHARE * len(pop)))]
    mask = np.ones(len(pop), dtype=bool)
    mask[head] = False
    return mask


BUILTIN: dict[str, Metric] = {m.name: m for m in (
    Metric("recall", "ranking", True, "share of the relevant items found in the top k", _recall),
    Metric("precision", "ranking", True, "share of the top k that is relevant", _precision),
    Metric("hit", "ranking", True, "1 if any relevant item is in the top k", _hit),
    Metric("mrr", "ranking", True, "reciprocal rank of the first relevant item in the top k", _mrr),
    Metric("ndcg", "ranking", True, "DCG of the top k over the DCG of an ideal ranking", _ndcg),
    Metric("map", "ranking", True, "sum of the precisions at the relevant ranks over the relevant items", _map),
    Metric("coverage", "beyond-accuracy", True, "share of the items in some top-k list", _coverage,
           per_user=False),
    Metric("gini", "beyond-accuracy", False, "concentration of the recommendations over items (0 = even)", gini,
           per_user=False),
    Metric("novelty", "beyond-accuracy", True, "mean self-information -log2(popularity) of the top k", _novelty),
    Metric("rmse", "rating", False, "root mean squared error of the predicted ratings", _rmse),
    Metric("mae", "rating", False, "mean absolute error of the predicted ratings", _mae),
    Metric("cold", "item-group", True, "items without training interactions", _cold),
    Metric("tail", "item-group", True, f"items outside the top {TAIL_HEAD_SHARE:.0%} by training popularity",
           _tail),
)}
ALIASES = {"hit_rate": "hit", "hr": "hit", "p": "precision", "r": "recall", "ap": "map"}
_PLUGINS: dict[str, Metric] = {}


# -- lookup ---------------------------------------------------------------------------------------
def split_group(name: str) -> tuple[str, str | None]:
    """``'recall@20/tail'`` -> ``('recall@20', 'tail')``; ``'recall@20'`` -> ``('recall@20', None)``."""
    base, sep, group = name.partition("/")
    return base, (group if sep else None)


def get(name: str) -> Metric:
    """The entry behind any form of a metric name: ``'ndcg'``, ``'NDCG@10'``, ``'hr@5'``,
    ``'recall@20/tail'`` (recall), ``'rmse'``, ``'tail'``; built in, else from a plugin."""
    base = split_group(name)[0].partition("@")[0].strip().lower()
    base = ALIASES.get(base, base)
    m = BUILTIN.get(base) or _PLUGINS.get(base)
    if m is None:
        m = _PLUGINS[base] = _load_plugin(base)
    return m


def _load_plugin(name: str) -> Metric:
    from .. import registry

    found = registry.entries("metrics")
    taken = sorted(set(found) & (set(BUILTIN) | set(ALIASES)))
    if taken:
        dist = found[taken[0]].distribution
        raise RegistryError(f"metric {taken[0]!r} of {dist} is built into mmbench",
                            hint=f"rename its entry point or uninstall {dist}")
    if name not in found:
        raise ConfigError(f"unknown metric {name!r}", hint=f"known: {', '.join(names())}")
    e = found[name]
    m = e.load()
    if not isinstance(m, Metric) or m.name != name or m.kind not in PLUGIN_KINDS:
        raise RegistryError(f"entry point {name!r} of {e.distribution} must name a mmbench.evaluate.metrics.Metric "
                            f"called {name!r} of kind {' or '.join(PLUGIN_KINDS)}", hint=f"fix {e.distribution}")
    return m


def names(kind: str | None = None) -> list[str]:
    """Built-in metrics of ``kind``; with no kind, all of them and then the installed plugins'
    (entry-point names, nothing loaded)."""
    from .. import registry

    own = [n for n, m in BUILTIN.items() if kind is None or m.kind == kind]
    return own + [n for n in registry.entries("metrics") if n not in BUILTIN and kind is None]


@functools.lru_cache(maxsize=1024)
def parse_metric(name: str) -> tuple[str, int | None]:
    """``'NDCG@10'`` -> ``('ndcg', 10)``; ``'rmse'`` -> ``('rmse', None)``; no item group."""
    low = name.strip().lower()
    match = _NAME.match(low)
    if not match:
        raise ConfigError(f"metric {name!r} is not 'name@k' or a rating metric",
                          hint=f"use one of {', '.join(names('ranking'))} with @k, or {', '.join(names('rating'))}")
    m, k = get(match.group(1)), match.group(2)
    if m.kind == "item-group":
        raise ConfigError(f"{name!r} is an item group", hint=f"restrict a ranking metric to it: 'recall@20/{m.name}'")
    if (m.kind == "rating") != (k is None):
        raise ConfigError(f"metric {name!r}: " + ("a rating metric takes no @k" if k else f"say the cut-off: {m.name}@k"))
    if k is not None and int(k) < 1:
        raise ConfigError(f"metric {name!r}: k must be >= 1")
    return m.name, None if k is None else int(k)


def canonical(name: str) -> str:
    """``'NDCG@10'`` -> ``'ndcg@10'``; ``'Recall@20/tail'`` -> ``'recall@20/tail'``; ``'RMSE'`` -> ``'rmse'``."""
    base, group = split_group(name)
    b, k = parse_metric(base)
    text = b if k is None else f"{b}@{k}"
    if group is None:
        return text
    try:
        g = get(group)
    except ConfigError:
        g = None
    if g is None or g.kind != "item-group" or get(b).kind != "ranking":
        raise ConfigError(f"metric {name!r}: the item group must be one of {names('item-group')} after a "
                          "ranking metric", hint="e.g. 'recall@20/tail' or 'ndcg@10/cold'")
    return f"{text}/{g.name}"


def higher_is_better(name: str) -> bool:
    """The direction of any metric name (``'ndcg@10'``, ``'recall@20/tail'``, ``'rmse'``, ``'gini@20'``)."""
    return get(name).higher_is_better
