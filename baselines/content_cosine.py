"""Content-cosine: items as a learned projection of their content, users as a profile,
cosine score."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmbench.errors import ConfigError
from mmbench.models import ContentRecommender, ModalityProjector, Param, bpr_loss, init_embedding, l2


class _ContentCosine(nn.Module):
    def __init__(self, features, n_users, dim, profile, temperature, user_sums, user_counts):
        super().__init__()
        self.proj = ModalityProjector(features, dim)
        self.profile = profile
        self.temperature = temperature
        if profile == "learned":
            self.user = init_embedding(n_users, dim)
        else:
            # per user and key: sum of the (preprocessed) content of the training items and
            # the number of those items that have the key (missing rows are zero in x)
            for j, (s, c) in enumerate(zip(user_sums, user_counts)):
                self.register_buffer(f"usum{j}", s)
                self.register_buffer(f"ucnt{j}", c)
            self.register_buffer("udeg", user_counts[-1])

    def content(self, items):
        emb, _ = self.proj(items)  # missing rows carry the learned per-key missing embedding
        return emb.sum(0)

    def mean_profile(self, u, leave_out=None):
        """Mean of the user's training items' (unnormalised) content vectors: the projection
        is affine per key, so it is the projection of the mean content, computed from the
        precomputed sums without touching the items. ``leave_out`` drops one item per row
        (the positive being scored), so training never scores an item against itself."""
        deg = self.udeg[u]
        if leave_out is not None:
            deg = deg - 1
        safe = deg.clamp(min=1).unsqueeze(-1)
        out = 0.0
        for j, layer in enumerate(self.proj.proj):
            s, c = getattr(self, f"usum{j}")[u], getattr(self, f"ucnt{j}")[u]
            if leave_out is not None:
                x, m = self.proj.raw(j)
                s = s - x[leave_out]
                c = c - m[leave_out].float()
            frac = (c / safe.squeeze(-1)).unsqueeze(-1)
            lin = layer[-1]  # Dropout, Linear: the affine part
            out = out + (s / safe) @ lin.weight.T + frac * lin.bias + (1 - frac) * self.proj.missing[j]
        return out

    def users(self, u, leave_out=None):
        vec = self.user(u) if self.profile == "learned" else self.mean_profile(u, leave_out)
        return F.normalize(vec, dim=-1) / self.temperature

    def items(self, i):
        return F.normalize(self.content(i), dim=-1), None

    def penalized(self, u, i, j):
        return [self.user(u)] if self.profile == "learned" else []


class ContentCosine(ContentRecommender):
    """Content-based filtering with a learned content projection (Pazzani & Billsus,
    "Content-Based Recommendation Systems", The Adaptive Web, 2007; Lops, de Gemmis &
    Semeraro, "Content-based Recommender Systems: State of the Art and Trends", RS Handbook
    2011): item = linear projection of the concatenated modality features (z-scored by
    default: ``features``; a missing row contributes a learned per-key "missing" vector);
    user = the mean of the content vectors of their training items (``profile="mean"``,
    the classic profile) or a free embedding (``profile="learned"``); score = cosine of the
    two, divided by ``temperature`` when training with BPR.

    With the mean profile a user is a function of their items only, so there are no user
    parameters and each training positive is left out of its own user's profile; it sums
    the items' fixed content once, so fine-tuning the features needs ``profile="learned"``.
    The classic papers use fixed TF-IDF vectors; learning the projection (64-d, BPR, Adam
    lr 1e-3) is this benchmark's choice, so that the same model works on any encoder.
    Uses any non-empty subset of text/image/audio/video.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "learned token (a per-key missing vector)"

    paper = "Pazzani & Billsus, The Adaptive Web 2007; Lops et al., RS Handbook 2011"
    embedding_dim = Param(64, ge=1, help="size of the projected content (and learned user) vectors")
    profile = Param("mean", choices=("mean", "learned"), help="user = mean of their items' content, or free")
    temperature = Param(0.1, gt=0.0, help="cosine scores are divided by it in the BPR loss")

    def build_module(self, data, features):
        if self.profile == "mean" and self.finetune_features:
            raise ConfigError("finetune_features=True needs profile='learned': the mean profile sums the fixed "
                              "content of each user's items once", where="model content-cosine")
        sums, counts = [], []
        if self.profile == "mean":
            deg = np.bincount(data.user, minlength=data.n_users).astype(np.float32)
            user = torch.as_tensor(data.user, dtype=torch.long)
            item = torch.as_tensor(data.item, dtype=torch.long)
            for k in sorted(features):
                f = features[k]
                x = torch.as_tensor(f.values)
                s = torch.zeros(data.n_users, x.shape[1])
                for c0 in range(0, len(user), 1 << 16):  # bounded temporary memory
                    s.index_add_(0, user[c0:c0 + (1 << 16)], x[item[c0:c0 + (1 << 16)]])
                sums.append(s)
                c = np.bincount(data.user, weights=f.mask[data.item].astype(np.float64), minlength=data.n_users)
                counts.append(torch.as_tensor(c.astype(np.float32)))
            counts.append(torch.as_tensor(deg))
        return _ContentCosine(features, data.n_users, self.embedding_dim, self.profile, self.temperature,
                              sums, counts)

    def loss(self, batch):
        u, i, j = batch
        m = self.module_
        eu = m.users(u, leave_out=i)
        vij, _ = self.batch_items(torch.cat([i, j]))
        vi, vj = vij.split(len(i))
        loss = bpr_loss((eu * vi).sum(-1), (eu * vj).sum(-1))
        pen = m.penalized(u, i, j)
        if self.reg and pen:
            loss = loss + self.reg * l2(*pen)
        return loss
