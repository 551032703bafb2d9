"""ItemKNN: item-based collaborative filtering, blended with content similarity when the
dataset has item content."""
from __future__ import annotations

import torch

from mmbench.models import Param, Recommender, resolve_device, select_features, standardize


def content_cosine(features: dict, device) -> torch.Tensor | None:
    """(n_items, n_items) mean over feature keys of the items' cosine similarity; a key
    missing for either item contributes 0. None when there is no feature."""
    if not features:
        return None
    sim = None
    for f in features.values():
        x = torch.as_tensor(standardize(f.values, f.mask, "standard"), device=device)
        x = torch.nn.functional.normalize(x, dim=1)  # missing rows are zero: they stay zero
        s = x @ x.T
        sim = s if sim is None else sim + s
    return sim / len(features)


class ItemKNN(Recommender):
    """Item-based collaborative filtering (Sarwar et al., "Item-based collaborative
    filtering recommendation algorithms", WWW 2001), content-boosted.

    Two items are similar when the same users interacted with both: cosine similarity of
    their training-user sets, shrunk towards zero for items with few users
    (``co / (|a| |b| + shrink)``). When the dataset has text, image or audio features, the
    similarity is ``(1 - alpha) * that + alpha * content cosine`` (the mean over feature
    keys of the items' cosine; a row the feature store marks missing contributes 0), so a
    cold item still has neighbours. Each item keeps its ``k`` most similar neighbours; a
    user's score for an item is the sum of its similarities to the user's training items.
    No training loop and no randomness. The similarity matrix is dense (n_items x n_items):
    an example for catalogs of a few ten thousand items.
    """

    paper = "Sarwar et al., WWW 2001"
    uses = ("text", "image", "audio")
    k = Param(100, ge=1, space=(50, 100, 200), help="neighbours kept per item")
    shrink = Param(10.0, ge=0.0, help="added to the norm product: damps similarities of rare items")
    alpha = Param(0.3, ge=0.0, le=1.0, help="weight of the content similarity (0: collaborative only)")

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        self.device_ = resolve_device(device)
        x = data.sparse_matrix(self.device_)
        x = torch.sparse_coo_tensor(x.indices(), torch.ones_like(x.values()), x.shape).coalesce()  # binary
        co = torch.sparse.mm(x.t().coalesce(), x.to_dense())  # items x items co-occurrence counts
        norms = co.diagonal().clone().sqrt()
        sim = co / (norms[:, None] * norms[None, :] + self.shrink)
        content = content_cosine(select_features(type(self), features or {}, n_items=data.n_items), self.device_)
        if content is not None:
            sim = (1.0 - self.alpha) * sim + self.alpha * content
        sim.fill_diagonal_(0.0)
        vals, idx = sim.topk(min(self.k, data.n_items), dim=1)
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
