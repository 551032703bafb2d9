"""BM3: self-supervised bootstrapping of graph and content embeddings (no negative sampling)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mmbench.models import (CONTENT_MODALITIES, CachedEmbeddings, ContentFeatures, ModalityProjector, Param,
                            TorchRecommender)
from mmbench.models.graph import bipartite_adjacency, layer_mean, unique_edges


class _BM3(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, features: dict):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_uniform_(self.user.weight)
        nn.init.xavier_uniform_(self.item.weight)
        self.predictor = nn.Linear(dim, dim)
        nn.init.xavier_normal_(self.predictor.weight)
        self.content = ModalityProjector(features, dim)
        for layer in self.content.proj:
            nn.init.xavier_normal_(layer[-1].weight)


def _cos_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(a, b, dim=-1).mean()


class BM3(ContentFeatures, CachedEmbeddings, TorchRecommender, epochs=1000, patience=20, features="raw",
          finetune_features=True):
    """BM3 (Zhou, Zhou, Liu, Zhang, Li, Feng, Shen & Miao, "Bootstrap Latent Representations for
    Multi-modal Recommendation", WWW 2023).

    Online embeddings: LightGCN over the user-item graph (``n_layers``, mean of layers) plus
    the item ID embedding; each modality is projected to the same space. Targets are the
    online embeddings with dropout (``dropout``, the paper's latent-embedding perturbation)
    and no gradient; a shared linear predictor maps online embeddings onto targets. Loss
    over positive (user, item) pairs only: 1 - cos between predicted users and target items
    and vice versa, plus ``cl_weight`` x the per-modality alignment (predicted modality
    embedding vs target item and vs its own target), plus ``reg_weight`` x
    (|E_users|_F + |E_items|_F) / n_items. Score = predictor(e_u) . predictor(e_i).

    Defaults from the paper and its released configuration: 64-d, Adam lr 1e-3, batch 2048,
    ``cl_weight`` 2.0; ``n_layers`` {1, 2}, ``dropout`` {0.3, 0.5} and ``reg_weight``
    {0.1, 0.01} are grid-searched there: 1, 0.5 and 0.1 here, tune them per dataset. As in
    the released code, the projections read the raw features and fine-tune them
    (``features="raw"``, ``finetune_features=True``: the feature rows are parameters
    initialised from the stored features).

    Modalities: at least one content feature of any modality (``requires_any``). Missing rows (mask
    False) are left out of the alignment terms; they never act as content.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = ("dropped (never content; left out of the alignment terms); its scores read no content, so a "
                    "modality removed at test time changes nothing")

    paper = "Zhou et al., WWW 2023"
    requires_any = CONTENT_MODALITIES
    embedding_dim = Param(64, ge=1, help="size of the user, item and projected modality embeddings")
    n_layers = Param(1, ge=0, help="LightGCN layers of the online encoder")
    dropout = Param(0.5, ge=0.0, lt=1.0, help="dropout that perturbs the target embeddings")
    reg_weight = Param(0.1, ge=0.0, space=(0.01, 0.1, 1.0), help="weight of the embedding-norm regulariser")
    cl_weight = Param(2.0, ge=0.0, help="weight of the per-modality alignment terms")

    def build(self, data, features):
        features = self.content_features(data, features)
        u, i = unique_edges(data.user, data.item, data.n_items, device=self.device_)
        self.adj_ = bipartite_adjacency(u, i, data.n_users, data.n_items)
        return _BM3(data.n_users, data.n_items, self.embedding_dim, features)

    def batches(self, data, epoch):
        """Positive pairs only: BM3 needs no negative sampling."""
        n = len(data)
        perm = torch.randperm(n, generator=self.generator_).to(self.users_t_.device)
        for s in range(0, n, self.batch_size):
            idx = perm[s:s + self.batch_size]
            yield self.users_t_[idx], self.items_t_[idx]

    def online(self):
        m = self.module_
        out = layer_mean(self.adj_, torch.cat([m.user.weight, m.item.weight]), self.n_layers)
        return out[:self.n_users_], out[self.n_users_:] + m.item.weight

    def final_embeddings(self):
        users, items = self.online()
        p = self.module_.predictor
        return p(users), p(items)

    def loss(self, batch):
        u, i = batch
        m = self.module_
        users, items = self.online()
        with torch.no_grad():
            u_target = F.dropout(users[u], self.dropout)
            i_target = F.dropout(items[i], self.dropout)
        loss = _cos_loss(m.predictor(users[u]), i_target) + _cos_loss(m.predictor(items[i]), u_target)
        once, inverse = torch.unique(i, return_inverse=True)  # each item projected once, then per pair
        feats, present = m.content(once)
        feats, present = feats[:, inverse], present[:, inverse]
        align = 0.0
        for k in range(feats.shape[0]):
            keep = present[k]
            if not keep.any():
                continue
            f = feats[k][keep]
            with torch.no_grad():
                f_target = F.dropout(f, self.dropout)
            f_online = m.predictor(f)
            align = align + _cos_loss(f_online, i_target[keep]) + _cos_loss(f_online, f_target)
        reg = (users.norm() + items.norm()) / self.n_items_
        return loss + self.cl_weight * align + self.reg_weight * reg
