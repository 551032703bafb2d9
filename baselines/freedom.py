"""FREEDOM: a frozen item-item kNN graph from content plus a degree-pruned user-item graph."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from mmbench.errors import ConfigError
from mmbench.models import (CONTENT_MODALITIES, CachedEmbeddings, ContentFeatures, ModalityProjector, Param,
                            TorchRecommender, bpr_loss, features_without)
from mmbench.models.graph import (bipartite_adjacency, degree_sensitive_sample, knn_indices, layer_mean, mix_graphs,
                                  propagate, sym_normalized, unique_edges)


def modality_weights(keys: list[str], image_weight: float) -> list[float]:
    """FREEDOM mixes the image and text graphs as w * image + (1 - w) * text. Generalised:
    image keys share ``image_weight``, the other keys share the rest (equal shares within a
    group); a group that is alone gets everything."""
    img = [k for k in keys if k.split("/", 1)[0] == "image"]
    rest = [k for k in keys if k not in img]
    if not img or not rest:
        return [1.0 / len(keys)] * len(keys)
    return [image_weight / len(img) if k in img else (1.0 - image_weight) / len(rest) for k in keys]


class _Freedom(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, features: dict, feat_dim: int):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_uniform_(self.user.weight)
        nn.init.xavier_uniform_(self.item.weight)
        # per-modality projections for the auxiliary BPR terms (missing rows: learned embedding)
        self.content = ModalityProjector(features, feat_dim)


class FREEDOM(ContentFeatures, CachedEmbeddings, TorchRecommender, epochs=1000, patience=20, features="raw",
              finetune_features=True):
    """FREEDOM (Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for
    Multimodal Recommendation", ACM MM 2023).

    - Item-item graph, frozen before training: per modality, each item's ``knn_k`` most
      cosine-similar items on the features as preprocessed (raw by default; itself included), symmetric-normalised, then
      mixed across modalities (image weight ``image_weight``, text the rest). Built in row
      chunks: no n_items x n_items matrix. Item ID embeddings are propagated ``n_mm_layers``
      times over it and added to the items' graph embeddings.
    - User-item graph, denoised: each epoch keeps ``1 - dropout`` of the edges, drawn without
      replacement with probability proportional to 1/sqrt(d_u d_i), re-normalised; LightGCN
      propagation over ``n_ui_layers`` layers (mean). Scoring uses the full graph.
    - Loss: BPR on the graph embeddings + ``reg_weight`` x (BPR of user embeddings against
      each modality's projected features).

    Defaults from the paper and its released configuration: 64-d embeddings and feature
    projections (``feat_dim`` follows ``embedding_dim``: the auxiliary loss needs both
    equal), k = 10, 1 item-item layer, 2 user-item layers, image weight 0.1, Adam lr 1e-3,
    batch 2048; ``dropout`` and ``reg_weight`` are grid-searched there ({0.8, 0.9} and
    {0, 1e-5, 1e-4, 1e-3}): 0.8 and 1e-4 here, tune them per dataset.

    Modalities: at least one content feature of any modality (``requires_any``). Missing rows (mask
    False) get no kNN edges and are no item's neighbour; an item missing one modality takes
    its item-item neighbours from the others (weights renormalised per item); the auxiliary
    losses use a learned missing embedding. As in the released code, the features are read
    raw and the projections fine-tune them through the auxiliary loss (``features="raw"``,
    ``finetune_features=True``), while the kNN graph, built from them before training,
    stays frozen.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = ("dropped from the item graph (neighbours from the other modalities); learned token in the "
                    "auxiliary losses")

    paper = "Zhou & Shen, ACM MM 2023"
    requires_any = CONTENT_MODALITIES
    embedding_dim = Param(64, ge=1, help="size of the user and item embeddings")
    feat_dim = Param(None, type=int, ge=1, help="size of the projected features (None: embedding_dim, which it "
                                                "must equal)")
    knn_k = Param(10, ge=1, help="neighbours per item in each modality's kNN graph")
    n_mm_layers = Param(1, ge=0, help="propagation layers over the item-item graph")
    n_ui_layers = Param(2, ge=0, help="propagation layers over the user-item graph")
    image_weight = Param(0.1, ge=0.0, le=1.0, help="weight of the image graphs (text and others share the rest)")
    dropout = Param(0.8, ge=0.0, lt=1.0, help="share of user-item edges dropped each epoch (degree-sensitive)")
    reg_weight = Param(1e-4, ge=0.0, space=(1e-5, 1e-4, 1e-3), help="weight of the user-vs-projected-feature BPR terms")
    knn_chunk = Param(0, ge=0, help="rows per block when building kNN graphs (0: sized to memory)")

    # -- structure -----------------------------------------------------------------------
    def item_graph(self, features: dict, n_items: int):
        keys = sorted(features)
        parts, masks = [], []
        for k in keys:
            f = features[k]
            x = torch.as_tensor(f.values, device=self.device_)
            m = torch.as_tensor(f.mask, dtype=torch.bool, device=self.device_)
            r, c = knn_indices(x, m, self.knn_k, chunk=self.knn_chunk or None)
            parts.append((r, c, sym_normalized(r, c, n_items)))
            masks.append(m)
        return mix_graphs(parts, modality_weights(keys, self.image_weight), masks, n_items)

    def build(self, data, features):
        feat_dim = self.embedding_dim if self.feat_dim is None else self.feat_dim
        if feat_dim != self.embedding_dim:
            # the auxiliary loss scores users' ID embeddings against projected features
            raise ConfigError(f"freedom: feat_dim ({feat_dim}) must equal embedding_dim ({self.embedding_dim})",
                              hint="leave feat_dim unset: it follows embedding_dim")
        features = self.content_features(data, features)
        self.graph_features_ = features  # what the frozen item graph is built from (see drop_modality)
        self.edges_ = unique_edges(data.user, data.item, data.n_items, device=self.device_)
        self.adj_ = bipartite_adjacency(*self.edges_, data.n_users, data.n_items)
        self.mm_adj_ = self.item_graph(features, data.n_items)
        self.train_adj_ = self.adj_
        return _Freedom(data.n_users, data.n_items, self.embedding_dim, features, feat_dim)

    @contextlib.contextmanager
    def drop_modality(self, key: str, items=None):
        """Within the block the frozen item-item graph is the one built before training from
        features where ``key`` is missing for ``items`` (None = every item): those items get
        no kNN edges in that key's graph, are no item's neighbour there, and take their
        neighbours from the other keys (weights renormalised), exactly as a row missing in
        the store would. Scoring reads content only through that graph (the projections
        serve the auxiliary losses), so nothing else changes."""
        before_features, before_adj = self.graph_features_, self.mm_adj_
        self.graph_features_ = features_without(before_features, key, items)
        try:
            self.mm_adj_ = self.item_graph(self.graph_features_, self.n_items_)
            self.embedding_cache_.clear()
            yield
        finally:
            self.graph_features_, self.mm_adj_ = before_features, before_adj
            self.embedding_cache_.clear()

    def batches(self, data, epoch):
        if self.dropout > 0:
            u, i = self.edges_
            keep = degree_sensitive_sample(u, i, self.n_users_, self.n_items_, 1.0 - self.dropout, self.generator_)
            self.train_adj_ = bipartite_adjacency(u[keep], i[keep], self.n_users_, self.n_items_)
        return self.triples(data, epoch)

    # -- model -----------------------------------------------------------------------------
    def embeddings(self, adj):
        m = self.module_
        h = propagate(self.mm_adj_, m.item.weight, self.n_mm_layers)[-1]
        ego = torch.cat([m.user.weight, m.item.weight])
        out = layer_mean(adj, ego, self.n_ui_layers)
        return out[:self.n_users_], out[self.n_users_:] + h

    def final_embeddings(self):
        return self.embeddings(self.adj_)

    def loss(self, batch):
        u, i, j = batch
        users, items = self.embeddings(self.train_adj_)
        eu = users[u]
        loss = bpr_loss((eu * items[i]).sum(1), (eu * items[j]).sum(1))
        if self.reg_weight:
            proj = self.module_.content
            once, inverse = torch.unique(torch.cat([i, j]), return_inverse=True)  # each item projected once
            fi, fj = proj(once)[0][:, inverse].split(len(i), dim=1)
            aux = sum(bpr_loss((eu * fi[k]).sum(1), (eu * fj[k]).sum(1)) for k in range(len(proj.keys)))
            loss = loss + self.reg_weight * aux
        return loss
