"""Adversarial modality alignment: a modality discriminator behind a gradient-reversal layer."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mmbench.models import (CONTENT_MODALITIES, CachedEmbeddings, ContentFeatures, ModalityProjector, Param,
                            TorchRecommender, bpr_loss, l2)


class GradReverse(torch.autograd.Function):
    """Identity forward; gradient multiplied by ``-coeff`` backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x, coeff: float):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    return GradReverse.apply(x, coeff)


def dann_coefficient(progress: float, gamma: float = 10.0) -> float:
    """The reversal strength schedule of DANN: 2 / (1 + exp(-gamma p)) - 1, from 0 to ~1."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class _Aligned(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, features: dict, disc_hidden: int):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.user.weight)
        nn.init.xavier_normal_(self.item.weight)
        self.content = ModalityProjector(features, dim)
        n_keys = len(self.content.keys)
        if disc_hidden:
            self.discriminator = nn.Sequential(nn.Linear(dim, disc_hidden), nn.LeakyReLU(0.2),
                                               nn.Linear(disc_hidden, n_keys))
        else:  # a linear (logistic-regression) discriminator
            self.discriminator = nn.Linear(dim, n_keys)

    def fused(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(content, z, present): the mean of the item's present modality embeddings (the mean
        of the learned missing embeddings for an item with none), z (n_keys, b, dim)."""
        z, present = self.content(items)
        w = present.unsqueeze(-1).float()
        count = w.sum(0)
        mean_present = (z * w).sum(0) / count.clamp_min(1.0)
        fallback = self.content.missing.mean(0).expand_as(mean_present)
        return torch.where(count > 0, mean_present, fallback), z, present


class AdversarialAlignment(ContentFeatures, CachedEmbeddings, TorchRecommender):
    """Modality-invariant item content through adversarial alignment.

    Each feature key is projected into one shared ``embedding_dim`` space; an item's content
    embedding is the mean of its present modality projections and score(u, i) = p_u . (q_i +
    content_i), trained with BPR. A modality discriminator (an MLP) learns to tell which
    modality a projected vector came from, through a gradient-reversal layer (Ganin &
    Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015), so the
    projections are pushed to make the modalities indistinguishable, as in adversarial
    cross-modal retrieval (Wang, Yang, Xu, Hanjalic & Shen, "Adversarial Cross-Modal
    Retrieval", ACM MM 2017). Loss: BPR + reg x L2(batch) + adv_weight x cross-entropy of the
    discriminator on the batch items' present modality embeddings.

    Defaults: 64-d, Adam lr 1e-3, batch 2048 (as our BPR), features z-scored per column and
    kept fixed (``features``, ``finetune_features``); adv_weight 1 and DANN's reversal
    schedule 2/(1 + exp(-10 p)) - 1 with p the fraction of ``epochs`` done (Ganin & Lempitsky);
    discriminator with one hidden layer of ``disc_hidden`` units (0: linear). ``disc_reg``
    (L2 on the discriminator's weights) damps the min-max game: without it, descent-ascent
    with Adam cycles (the modalities swap sides of the boundary and stay separable) or the
    discriminator wins outright; measured on planted data, a held-out linear probe stays at
    100% without it and drops to 55-75% with 0.1. The game needs a small lr (1e-3; at 1e-2 it
    does not settle). ``adv_weight=0`` is the same model without alignment.

    Modalities: one or more content features (``requires_any``); the adversary needs two or more
    keys (with one it is switched off). Missing rows (mask False) are dropped from the mean
    and from the discriminator's inputs. ``modality_representations()`` returns each key's
    item embeddings in the shared space (for probing how modality-invariant they are).
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "dropped (left out of the mean and of the discriminator)"

    paper = "Ganin & Lempitsky, ICML 2015; Wang et al., ACM MM 2017"
    requires_any = CONTENT_MODALITIES
    embedding_dim = Param(64, ge=1, help="size of the shared space (user, item and projected modalities)")
    adv_weight = Param(1.0, ge=0.0, space=(0.3, 1.0, 3.0), help="weight of the discriminator's loss (0: no alignment)")
    disc_hidden = Param(64, ge=0, help="hidden units of the modality discriminator (0: linear)")
    disc_reg = Param(0.1, ge=0.0, space=(0.01, 0.1, 1.0),
                     help="L2 on the discriminator's weights (damps the min-max game)")
    reg = Param(0.0, ge=0.0, help="L2 weight on the batch's user and item representations")

    def build(self, data, features):
        features = self.content_features(data, features)
        self.epoch_ = 1
        return _Aligned(data.n_users, data.n_items, self.embedding_dim, features, self.disc_hidden)

    def batches(self, data, epoch):
        self.epoch_ = epoch
        return self.triples(data, epoch)

    def reversal_coefficient(self) -> float:
        return dann_coefficient(min(1.0, self.epoch_ / max(self.epochs, 1)))

    def adversarial_loss(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the discriminator on the present rows, through the reversal layer."""
        n_keys = z.shape[0]
        labels = torch.arange(n_keys, device=z.device).unsqueeze(1).expand_as(present)
        zs, ys = z[present], labels[present]
        if n_keys < 2 or zs.shape[0] == 0:
            return z.sum() * 0.0
        disc = self.module_.discriminator
        logits = disc(grad_reverse(zs, self.reversal_coefficient()))
        penalty = sum(p.pow(2).sum() for name, p in disc.named_parameters() if name.endswith("weight"))
        return F.cross_entropy(logits, ys) + self.disc_reg * penalty

    def loss(self, batch):
        u, i, j = batch
        m = self.module_
        items, inv = torch.unique(torch.cat([i, j]), return_inverse=True)
        content, z, present = m.fused(items)
        reps = m.item(items) + content
        eu, ri, rj = m.user(u), reps[inv[:len(i)]], reps[inv[len(i):]]
        loss = bpr_loss((eu * ri).sum(1), (eu * rj).sum(1))
        if self.reg:
            loss = loss + self.reg * l2(eu, ri, rj)
        if self.adv_weight:
            loss = loss + self.adv_weight * self.adversarial_loss(z, present)
        return loss

    def final_embeddings(self):
        m = self.module_
        return m.user.weight, m.item.weight + m.fused()[0]

    def modality_representations(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{key: (embeddings (n_items, dim), present mask (n_items,))} in the shared space, on
        the CPU. Rows whose mask is False hold the key's learned missing embedding."""
        m = self.module_
        with torch.no_grad():
            z, present = m.content()
        return {k: (z[j].cpu(), present[j].cpu()) for j, k in enumerate(m.content.keys)}
