"""ItemKNN-CBF: item-based k-nearest neighbours on content similarity (no training)."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from mmbench.models import CONTENT_MODALITIES, ContentFeatures, Param, Recommender, features_without, resolve_device


def content_matrix(features: dict) -> np.ndarray:
    """Unit-norm item rows built from every feature key (as preprocessed: the model's
    ``features`` parameter): each key's rows are L2-normalised, missing rows are zero, and
    the concatenation is divided by the square root of the number of keys the item has, so
    the cosine of two items is the mean of their per-key cosines over the keys both have
    (weighted by presence)."""
    keys = sorted(features)
    blocks, present = [], np.zeros(features[keys[0]].values.shape[0], dtype=np.float64)
    for k in keys:
        f = features[k]
        x = f.values / np.maximum(np.linalg.norm(f.values, axis=1, keepdims=True), 1e-12)
        x[~f.mask] = 0.0
        blocks.append(x)
        present += f.mask
    mat = np.concatenate(blocks, axis=1)
    return (mat / np.sqrt(np.maximum(present, 1.0))[:, None]).astype(np.float32)


class ItemKNNCBF(ContentFeatures, Recommender):
    """Content-based item kNN, the ItemKNN-CBF baseline of Ferrari Dacrema, Cremonesi &
    Jannach, "Are We Really Making Much Progress? A Worrying Analysis of Recent Neural
    Recommendation Approaches" (RecSys 2019); content-based filtering after Lops, de
    Gemmis & Semeraro, "Content-based Recommender Systems: State of the Art and Trends"
    (Recommender Systems Handbook, 2011).

    sim(i, j) = cosine of the items' content vectors (all available modalities, see
    :func:`content_matrix`); each item keeps its ``k`` most similar other items with a
    positive similarity; score(u, i) = sum of sim(i, j) over the user's training items j
    among i's neighbours. Cold items (no interactions) are scored like any other, which is
    the point of the model.

    Defaults: ``k = 50`` (the paper tunes topK in 5..1000 per dataset; there is no single
    published default); each key's columns z-scored before the cosine (``features``;
    ``raw`` takes the cosine of the features as stored). Its ``shrink`` term is left out:
    rows are unit-normalised here, so a constant shrink would rescale every similarity
    equally. Nothing is trained, so there is no ``finetune_features``. Uses any non-empty subset of
    text/image/audio/video; items with no content at all have no neighbours (score 0).
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "dropped (the cosine averages the keys both items have)"

    paper = "Ferrari Dacrema et al., RecSys 2019; Lops et al., RS Handbook 2011"
    requires_any = CONTENT_MODALITIES

    k = Param(50, ge=1, space=(25, 50, 100), help="neighbours kept per item")
    finetune_features = False  # nothing is trained: not a parameter of this model

    def fit(self, data, features=None, *, seed: int = 0, device: str = "cpu", context=None):
        self.device_ = resolve_device(device)
        self.content_ = self.content_features(data, features or {})
        self.n_items_ = data.n_items
        self.sim_ = self.similarities(self.content_)
        indptr, indices = data.csr
        self.indptr_ = torch.as_tensor(indptr, device=self.device_)
        self.indices_ = torch.as_tensor(indices, device=self.device_)
        self.fit_info_ = {"best_epoch": 0, "epochs_run": 0}
        return self

    def similarities(self, content: dict) -> torch.Tensor:
        """The sparse kNN similarity matrix of the items' ``content`` (key -> ContentFeature)."""
        x = torch.as_tensor(content_matrix(content), device=self.device_)
        return self._neighbours(x, min(int(self.k), max(self.n_items_ - 1, 1)))

    @contextlib.contextmanager
    def drop_modality(self, key: str, items=None):
        """Within the block the similarities are those of content where ``key`` is missing for
        ``items`` (None = every item): the dropped items' cosines average the other keys, so
        their neighbours change, and so do the scores of every item that had one of them as
        a neighbour (nothing is trained: the model is its similarity matrix)."""
        before_content, before_sim = self.content_, self.sim_
        self.content_ = features_without(before_content, key, items)
        try:
            self.sim_ = self.similarities(self.content_)
            yield
        finally:
            self.content_, self.sim_ = before_content, before_sim

    def _neighbours(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Sparse (n, n) COO: row i holds i's top-k positive similarities (itself excluded)."""
        n = x.shape[0]
        step = max(1, (1 << 22) // max(n, 1))
        rows, cols, vals = [], [], []
        for s in range(0, n, step):
            sim = x[s:s + step] @ x.T
            r = torch.arange(s, min(s + step, n), device=x.device)
            sim[r - s, r] = -torch.inf
            v, c = torch.topk(sim, k, dim=1)
            keep = v > 0
            rows.append(r.unsqueeze(1).expand_as(c)[keep])
            cols.append(c[keep])
            vals.append(v[keep])
        idx = torch.stack([torch.cat(rows), torch.cat(cols)])
        return torch.sparse_coo_tensor(idx, torch.cat(vals), (n, n), check_invariants=True).coalesce()

    def score(self, users):
        users = torch.as_tensor(users, dtype=torch.long, device=self.device_)
        b = len(users)
        starts = self.indptr_[users]
        counts = self.indptr_[users + 1] - starts
        row = torch.repeat_interleave(torch.arange(b, device=self.device_), counts)
        first = torch.cumsum(counts, 0) - counts
        offs = torch.arange(row.numel(), device=self.device_) - torch.repeat_interleave(first, counts)
        col = self.indices_[torch.repeat_interleave(starts, counts) + offs]
        seen = torch.zeros((self.n_items_, b), dtype=torch.float32, device=self.device_)
        seen[col, row] = 1.0
        # score(u, i) = sum_j sim[i, j] * seen[j, u]: one sparse @ dense product
        return (self.sim_ @ seen).T.contiguous()
