"""ItemKNN: item-based collaborative filtering with shrunk cosine similarity."""
from __future__ import annotations

import torch

from mmbench.models import Recommender


class ItemKNN(Recommender):
    """Item-based collaborative filtering (Sarwar et al., "Item-based collaborative
    filtering recommendation algorithms", WWW 2001).

    Two items are similar when the same users interacted with both: cosine similarity of
    their training-user sets, shrunk towards zero for items with few users
    (``co / (|a| |b| + shrink)``), keeping the ``k`` most similar neighbours of each item.
    A user's score for an item is the sum of its similarities to the user's training
    items. No training loop and no randomness; needs no modality. The similarity matrix is
    dense (n_items x n_items): an example for catalogs of a few ten thousand items.
    """

    paper = "Sarwar et al., WWW 2001"

    def __init__(self, k: int = 100, shrink: float = 10.0):
        self.k = k
        self.shrink = shrink

    def fit(self, data, features=None, *, seed=0, device="cpu", validator=None):
        from mmbench.train import resolve_device

        self.device_ = resolve_device(device)
        x = data.sparse_matrix(self.device_)
        x = torch.sparse_coo_tensor(x.indices(), torch.ones_like(x.values()), x.shape).coalesce()  # binary
        co = torch.sparse.mm(x.t().coalesce(), x.to_dense())  # items x items co-occurrence counts
        norms = co.diagonal().clone().sqrt()
        sim = co / (norms[:, None] * norms[None, :] + self.shrink)
        sim.fill_diagonal_(0.0)
        k = min(self.k, data.n_items)
        vals, idx = sim.topk(k, dim=1)
        self.sim_ = torch.zeros_like(sim).scatter_(1, idx, vals)
        indptr, indices = data.csr  # each user's training items
        self.indptr_ = torch.as_tensor(indptr, device=self.device_)
        self.indices_ = torch.as_tensor(indices, device=self.device_)
        self.fit_info_ = {"best_epoch": 0, "epochs_run": 0}
        return self

    def score(self, users):
        users = torch.as_tensor(users, dtype=torch.long, device=self.device_)
        starts = self.indptr_[users]
        counts = self.indptr_[users + 1] - starts
        rows = torch.repeat_interleave(torch.arange(len(users), device=self.device_), counts)
        first = torch.cumsum(counts, 0) - counts
        offsets = torch.arange(int(counts.sum()), device=self.device_) - torch.repeat_interleave(first, counts)
        cols = self.indices_[torch.repeat_interleave(starts, counts) + offsets]
        history = torch.zeros((len(users), self.sim_.shape[0]), device=self.device_)
        history[rows, cols] = 1.0
        return history @ self.sim_
