"""Data for the benchmarks: a split that every implementation reads, and exact scores.

``Split`` holds (user, item, label) arrays (label 0 train / 1 valid / 2 test) and offers
what mmbench's evaluator and trainer read from a PreparedDataset (``csr``, ``pairs``,
``train_data``), so the same object feeds mmbench and is exported to the peers.

``synthetic_split`` draws a catalog with clustered tastes (learnable by BPR) and power-law
item popularity; every item has at least one training interaction, so peers that index
items from the training file rank the same candidates.

``ExactScores`` are the scores every evaluator ranks: ternary user/item vectors (63-d) and
one column that adds a distinct per-item tie-break, all small integers in float32. Every
partial sum of the 64-d dot product is an integer below 2**24, so the scores are exact and
identical whatever the summation order (gemv per user, gemm per batch, numpy or torch)
and no two items of a user tie: the metrics of different implementations can agree exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    name: str
    n_users: int
    n_items: int
    user: np.ndarray  # int64
    item: np.ndarray  # int64
    label: np.ndarray  # int8: 0 train, 1 valid, 2 test

    _LABEL = {"train": 0, "valid": 1, "test": 2}

    def mask(self, split: str) -> np.ndarray:
        return self.label == self._LABEL[split]

    def csr(self, *splits: str):
        """User -> items of the given splits, cached per object as mmbench's PreparedDataset
        caches them (every evaluator that reads CSR lists from a Split gets the cached ones)."""
        key = tuple(sorted(splits))
        cache = self.__dict__.setdefault("_csr_cache", {})
        if key not in cache:
            m = np.zeros(len(self.label), dtype=bool)
            for s in splits:
                m |= self.mask(s)
            u, i = self.user[m], self.item[m]
            order = np.lexsort((i, u))
            indptr = np.zeros(self.n_users + 1, dtype=np.int64)
            np.cumsum(np.bincount(u, minlength=self.n_users), out=indptr[1:])
            cache[key] = (indptr, i[order].astype(np.int64))
        return cache[key]

    def pairs(self, split: str):
        m = self.mask(split)
        return self.user[m], self.item[m], np.ones(int(m.sum()), dtype=np.float32)

    def train_data(self):
        from mmbench.data.dataset import TrainData

        m = self.mask("train")
        n = int(m.sum())
        return TrainData(self.n_users, self.n_items, self.user[m], self.item[m], np.ones(n, np.float32),
                         np.zeros(n, np.int64), dataset=self.name)

    def stats(self) -> dict:
        return {"users": self.n_users, "items": self.n_items, "interactions": len(self.user),
                "train": int(self.mask("train").sum()), "valid": int(self.mask("valid").sum()),
                "test": int(self.mask("test").sum())}


def from_prepared(ds) -> Split:
    a = ds.arrays
    return Split(ds.name, ds.n_users, ds.n_items, a["user"].astype(np.int64), a["item"].astype(np.int64),
                 a["label"].astype(np.int8))


def synthetic_split(n_users: int, n_items: int, per_user: float, *, clusters: int = 64, focus: float = 0.8,
                    seed: int = 0, name: str | None = None) -> Split:
    """Each user draws ``2 + Poisson(per_user - 2)`` distinct items: a share ``focus`` from
    one taste cluster (items ranked by a power law inside it), the rest by global
    popularity. Per user: one test item, one valid item, the rest 90:5:5 (about 7:1.5:1.5 overall)."""
    rng = np.random.default_rng(seed)
    clusters = max(1, min(clusters, n_items))
    item_cluster = rng.permutation(np.arange(n_items) % clusters)  # no empty cluster
    pop = 1.0 / (np.arange(n_items) + 10.0) ** 0.8
    rng.shuffle(pop)
    pop /= pop.sum()
    by_cluster = [np.flatnonzero(item_cluster == c) for c in range(clusters)]
    cdf_c = [np.cumsum(pop[ix]) / pop[ix].sum() for ix in by_cluster]
    n_per = 3 + rng.poisson(max(per_user - 3, 0.0), size=n_users)
    user = np.repeat(np.arange(n_users, dtype=np.int64), n_per)
    taste = rng.integers(clusters, size=n_users)[user]
    from_taste = rng.random(len(user)) < focus
    item = np.empty(len(user), dtype=np.int64)
    glob = np.cumsum(pop)
    item[~from_taste] = np.minimum(np.searchsorted(glob, rng.random(int((~from_taste).sum()))), n_items - 1)
    for c in range(clusters):  # inverse-CDF draw inside each cluster
        m = from_taste & (taste == c)
        pick = np.minimum(np.searchsorted(cdf_c[c], rng.random(int(m.sum()))), len(by_cluster[c]) - 1)
        item[m] = by_cluster[c][pick]
    key = np.unique(user * n_items + item)  # drop repeated draws
    # every item gets one training interaction (a random user) so all peers index all items
    extra = rng.integers(n_users, size=n_items) * n_items + np.arange(n_items)
    user, item = key // n_items, key % n_items
    is_extra = np.zeros(len(key), bool)
    ekey = np.setdiff1d(extra, key)
    user = np.concatenate([user, ekey // n_items])
    item = np.concatenate([item, ekey % n_items])
    is_extra = np.concatenate([is_extra, np.ones(len(ekey), bool)])
    order = np.lexsort((rng.random(len(user)), user))  # shuffled within user
    user, item, is_extra = user[order], item[order], is_extra[order]
    start = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users), out=start[1:])
    rank = np.arange(len(user)) - start[user]
    label = rng.choice(np.array([0, 1, 2], np.int8), p=[0.9, 0.05, 0.05], size=len(user))
    label[rank == 0], label[rank == 1] = 2, 1
    label[is_extra] = 0
    return Split(name or f"synthetic-{n_users}x{n_items}", n_users, n_items, user, item, label)


class ExactScores:
    """``score(users) = U[users] @ V.T`` with integer-valued float32 factors (see module doc)."""

    def __init__(self, split: Split, dim: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed + 1)
        d = dim - 1
        assert split.n_items * (d + 1) < 2 ** 24, "catalog too large for exact float32 scores"
        V = rng.integers(-1, 2, size=(split.n_items, d)).astype(np.float32)
        # users lean towards the items they interacted with (train + test): non-trivial hits
        import torch

        acc_t = torch.zeros((split.n_users, d))
        V_t = torch.from_numpy(V)
        for s in range(0, len(split.user), 1 << 18):  # chunked: no (nnz x d) temporary
            acc_t.index_add_(0, torch.from_numpy(split.user[s:s + (1 << 18)]),
                             V_t[torch.from_numpy(split.item[s:s + (1 << 18)])])
        acc = acc_t.numpy()
        noise = rng.normal(0.0, 1.0, size=acc.shape).astype(np.float32)
        U = np.sign(acc + 0.5 * noise * np.sqrt(np.maximum(np.abs(acc), 1.0)))
        tie = rng.permutation(split.n_items).astype(np.float32)
        self.U = np.ascontiguousarray(np.concatenate([U * split.n_items, np.ones((split.n_users, 1), np.float32)], 1))
        self.V = np.ascontiguousarray(np.concatenate([V, tie[:, None]], 1))
        self.U_t = torch.from_numpy(self.U)
        self.V_t = torch.from_numpy(self.V)
        self.n_items = split.n_items

    def __call__(self, users):
        """torch: scores (b, n_items) float32 for a LongTensor of user ids."""
        return self.U_t[users] @ self.V_t.T

    def row(self, user: int) -> np.ndarray:
        """numpy: the scores of one user (what per-user peers call)."""
        return self.V @ self.U[user]
