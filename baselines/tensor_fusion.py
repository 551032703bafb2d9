"""Tensor fusion: outer product of the modality projections, each extended by a constant 1."""
from __future__ import annotations

import torch
from torch import nn

from mmbench.errors import ConfigError
from mmbench.models import MISSING_MODES, ContentRecommender, ModalityProjector, Param, UserDotItem, init_embedding

MAX_FUSED = 1 << 17  # width of the flattened outer product we accept


def post_fusion(d_in: int, hidden: int, layers: int, d_out: int, dropout: float) -> nn.Sequential:
    """TFN's inference subnetwork: dropout on the fused tensor, ``layers`` ReLU layers of
    ``hidden`` units, a linear output layer."""
    blocks: list[nn.Module] = [nn.Dropout(dropout)]
    for width in [d_in] + [hidden] * (layers - 1):
        blocks += [nn.Linear(width, hidden), nn.ReLU()]
    return nn.Sequential(*blocks, nn.Linear(hidden, d_out))


class _TensorFusion(UserDotItem, nn.Module):
    def __init__(self, features, n_users, n_items, proj_dim, dim, hidden, layers, dropout, missing, use_id):
        super().__init__()
        self.proj = ModalityProjector(features, proj_dim, impute=missing == "impute")
        self.missing_mode = missing
        self.user = init_embedding(n_users, dim)
        self.id = init_embedding(n_items, dim, 0.01) if use_id else None
        self.net = post_fusion((proj_dim + 1) ** len(self.proj.keys), hidden, layers, dim, dropout)

    def fused(self, items=None) -> torch.Tensor:
        """z = [1; h_1] (x) [1; h_2] (x) ... flattened: (n, (p+1)^K). With ``missing="drop"``
        an absent modality's h is 0, so only the terms without it survive."""
        emb, present = self.proj(items)
        if self.missing_mode == "drop":
            emb = emb * present.unsqueeze(-1).to(emb.dtype)
        one = torch.ones(emb.shape[1], 1, dtype=emb.dtype, device=emb.device)
        z = None
        for h in emb.unbind(0):
            h1 = torch.cat([one, h], -1)
            z = h1 if z is None else (z.unsqueeze(-1) * h1.unsqueeze(1)).flatten(1)
        return z

    def items(self, i):
        return self.with_id(self.net(self.fused(i)), i), None


class TensorFusion(ContentRecommender):
    """Tensor fusion (Zadeh et al., "Tensor Fusion Network for Multimodal Sentiment
    Analysis", EMNLP 2017): each modality feature is projected to ``proj_dim`` and extended
    by a constant 1; the outer product of these vectors holds every unimodal, bimodal and
    trimodal interaction; an MLP maps it to the item vector, to which the ID embedding is
    added (``use_id``); score = dot product with a user embedding, BPR.

    As in the paper: the constant 1 per modality and its post-fusion (sentiment inference)
    network, two layers of 128 ReLU units (``hidden_layers``, ``hidden_dim``) before the
    output layer, with dropout (0.15) on the fused tensor as in the PyTorch implementation
    the field reuses (Justin1904/TensorFusionNetworks, ``model.py``: ``post_fusion_dropout``
    then ``post_fusion_layer_1..3``; the authors' Theano code is no longer maintained).
    Deviations: the modality sub-networks are affine projections of
    pre-extracted features, 8-d by default (three keys give a 729-wide product; the paper's
    wider sub-networks would not scale to more keys, and 16-d was both slower and no better
    on the synthetic data), the task is ranking, not sentiment regression, and the
    features are z-scored per column and kept fixed (``features``, ``finetune_features``:
    the benchmark's choice). A missing row is zero (``missing="drop"``: its modality drops
    out of the product, leaving the other terms), a learned vector (``"embed"``) or imputed
    from the item's other modalities (``"impute"``, k-NN by each other key). Uses
    any non-empty subset of text/image/audio/video; the product width (proj_dim + 1) **
    n_keys must stay below 131,072.
    """

    paper = "Zadeh et al., EMNLP 2017"
    embedding_dim = Param(64, ge=1, help="size of the user and item vectors")
    proj_dim = Param(8, ge=1, help="size of each modality's projection before the outer product")
    hidden_dim = Param(128, ge=1, help="units of each post-fusion layer")
    hidden_layers = Param(2, ge=1, help="ReLU layers of the post-fusion network (the paper's: 2)")
    dropout = Param(0.15, ge=0.0, lt=1.0, help="dropout on the fused tensor")
    missing = Param("drop", choices=MISSING_MODES,
                    help="a missing row: zero (drop), a learned vector (embed) or imputed from "
                         "the item's other modalities (impute)")
    use_id = Param(True, help="add the item's ID embedding to the fused content")

    def build_module(self, data, features):
        width = (self.proj_dim + 1) ** len(features)
        if width > MAX_FUSED:
            raise ConfigError(f"the outer product of {len(features)} features at proj_dim={self.proj_dim} is "
                              f"{width} wide (limit {MAX_FUSED})", where="model tensor-fusion",
                              hint="lower proj_dim or select fewer feature keys")
        return _TensorFusion(features, data.n_users, data.n_items, self.proj_dim, self.embedding_dim,
                             self.hidden_dim, self.hidden_layers, self.dropout, self.missing, self.use_id)
