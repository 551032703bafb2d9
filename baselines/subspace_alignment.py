"""Subspace alignment: modality encoders into one common subspace, aligned, fused there.

Also home of the alignment objectives the transformer fusion shares (``info_nce``,
``soft_cca``, ``view_alignment``).
"""
from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from mmbench.models import ContentRecommender, ModalityProjector, Param, UserDotItem, init_embedding

OBJECTIVES = ("contrastive", "cca")


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views of the same rows (row r of ``a`` and of ``b`` are
    a positive pair, every other row of the batch a negative), on cosine similarities, as in
    CLIP (Radford et al., ICML 2021)."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def soft_cca(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Soft CCA (Chang, Xiang & Hospedales, CVPR 2018) in VICReg's form (Bardes, Ponce &
    LeCun, ICLR 2022): the mean squared distance between the two views, plus, per view, a
    hinge holding each dimension's standard deviation at 1 and the squared off-diagonal
    covariances, which stand in for CCA's whitening constraints (no collapse, decorrelated
    dimensions)."""
    loss = F.mse_loss(a, b)
    d = a.shape[1]
    for x in (a, b):
        x = x - x.mean(0)
        loss = loss + F.relu(1.0 - torch.sqrt(x.var(0) + 1e-4)).mean()
        cov = x.T @ x / (len(x) - 1)
        loss = loss + (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d
    return loss


def view_alignment(z: torch.Tensor, present: torch.Tensor, objective: str = "contrastive",
                   temperature: float = 0.1) -> torch.Tensor:
    """Mean alignment loss over every pair of views, each pair on the rows where both are
    present (a pair sharing fewer than two rows is skipped). ``z``: (n_views, n, d),
    ``present``: bool (n_views, n)."""
    losses = []
    for a, b in itertools.combinations(range(z.shape[0]), 2):
        both = present[a] & present[b]
        if int(both.sum()) >= 2:
            za, zb = z[a][both], z[b][both]
            losses.append(info_nce(za, zb, temperature) if objective == "contrastive" else soft_cca(za, zb))
    return torch.stack(losses).mean() if losses else z.sum() * 0.0


def pool_present(z: torch.Tensor, present: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
    """Per row, the mean (``logits`` None) or the softmax(``logits``)-weighted sum of the
    present views of ``z`` (n_views, n, d); a row with no view present pools them all (its
    learned missing embeddings)."""
    valid = present | ~present.any(0, keepdim=True)
    if logits is None:
        w = valid.to(z.dtype) / valid.sum(0, keepdim=True)
    else:
        w = torch.softmax(logits.masked_fill(~valid, -torch.inf), dim=0)
    return (w.unsqueeze(-1) * z).sum(0)


class _Subspace(UserDotItem, nn.Module):
    def __init__(self, features, n_users, n_items, dim, sub_dim, hidden, fusion, sphere, use_id):
        super().__init__()
        self.content = ModalityProjector(features, sub_dim, hidden=hidden or None)
        self.sphere = sphere
        self.att = (nn.Sequential(nn.Linear(sub_dim, sub_dim), nn.Tanh(), nn.Linear(sub_dim, 1, bias=False))
                    if fusion == "attention" else None)
        self.head = nn.Linear(sub_dim, dim)
        self.user = init_embedding(n_users, dim)
        self.id = init_embedding(n_items, dim, 0.01) if use_id else None

    def views(self, i=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each key's item vectors in the common subspace (n_keys, n, sub_dim) and the mask."""
        z, present = self.content(i)
        return (F.normalize(z, dim=-1) if self.sphere else z), present

    def fused(self, i=None) -> torch.Tensor:
        z, present = self.views(i)
        return pool_present(z, present, None if self.att is None else self.att(z).squeeze(-1))

    def items(self, i):
        return self.with_id(self.head(self.fused(i)), i), None


class SubspaceAlignment(ContentRecommender):
    """Common-subspace alignment: one encoder per modality feature (a two-layer MLP, or
    linear with ``hidden_dim=0``) maps the item's features into a shared ``subspace_dim``
    space; an alignment objective between every pair of modalities pulls an item's views
    together, the views are fused there (mean or additive attention over the present ones)
    and a linear head plus the item's ID embedding gives the item vector; score = dot
    product with a user embedding; BPR + ``align_weight`` x alignment, trained jointly.

    Objectives: ``contrastive``, symmetric InfoNCE on cosine similarities with in-batch
    negatives (van den Oord et al., arXiv 2018; CLIP, Radford et al., ICML 2021); views live
    and are fused on the unit sphere. ``cca``, a deep-CCA-style correlation objective
    (Andrew et al., "Deep Canonical Correlation Analysis", ICML 2013) in its scalable soft
    form (Chang et al., CVPR 2018; VICReg's variance/covariance terms, Bardes et al., ICLR
    2022); views are fused as they are. Alignment runs on the batch's positive items, each
    pair of keys on the items where both are present; with one key there is nothing to align.

    Because aligned views agree, a modality present at training can stand in for one missing
    at test (``drop_modality``): the fused vector of an item that lost a view moves little.
    Defaults are the benchmark's (64-d user/item vectors, 32-d subspace, 128 hidden units,
    alignment weight 0.1, temperature 0.1, Adam lr 1e-3, batch 2048, features z-scored per
    column and kept fixed: ``features``, ``finetune_features``); the papers fix none for
    recommendation. Uses any non-empty subset of text/image/audio/video.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "dropped (the common subspace pools the present views, aligned to stand in for it)"

    paper = "Andrew et al., ICML 2013 (DCCA); Chang et al., CVPR 2018 (soft CCA); Radford et al., ICML 2021 (CLIP)"
    lr = Param(1e-3, gt=0.0, log=True, space=(3e-4, 1e-3, 3e-3), help="learning rate of the optimiser")
    reg = Param(1e-4, ge=0.0, space=(1e-5, 1e-4, 1e-3), help="L2 weight on the batch's user and ID embeddings")
    embedding_dim = Param(64, ge=1, help="size of the user and item vectors")
    subspace_dim = Param(32, ge=1, space=(16, 32, 64), help="size of the common subspace")
    hidden_dim = Param(128, ge=0, help="hidden units of each modality encoder (0: linear)")
    objective = Param("contrastive", choices=OBJECTIVES, help="alignment: InfoNCE (contrastive) or soft CCA (cca)")
    align_weight = Param(0.1, ge=0.0, space=(0.01, 0.1, 1.0), help="weight of the alignment loss (0: none)")
    temperature = Param(0.1, gt=0.0, space=(0.05, 0.1, 0.2), help="temperature of the contrastive objective")
    fusion = Param("mean", choices=("mean", "attention"), help="how the present views are fused in the subspace")
    use_id = Param(True, help="add the item's ID embedding to the fused content")

    def build_module(self, data, features):
        return _Subspace(features, data.n_users, data.n_items, self.embedding_dim, self.subspace_dim,
                         self.hidden_dim, self.fusion, self.objective == "contrastive", self.use_id)

    def loss(self, batch):
        loss = super().loss(batch)
        if self.align_weight and len(self.feature_keys_) > 1:
            z, present = self.module_.views(torch.unique(batch[1]))
            loss = loss + self.align_weight * view_alignment(z, present, self.objective, self.temperature)
        return loss

    def subspace(self, items=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{key: (item vectors in the common subspace, present mask)} on the CPU."""
        m = self.module_
        with torch.no_grad():
            z, present = m.views(None if items is None else torch.as_tensor(items, device=self.device_))
        return {k: (z[j].cpu(), present[j].cpu()) for j, k in enumerate(m.content.keys)}
