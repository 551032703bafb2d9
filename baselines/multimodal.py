"""Shared machinery of the content and fusion baselines.

A content model's ``nn.Module`` exposes two towers whose dot product is the score:

- ``users(u) -> (b, D)``
- ``items(i or None) -> (vectors (n, D), bias (n,) or None)``; ``None`` = every item

so ranking is one ``(b, D) @ (D, n_items)`` matmul on the device. Item vectors depend only
on the (fixed) content and the parameters, so they are computed once and cached until a
parameter changes (tracked through the tensors' version counters: optimiser steps and the
best-epoch restore both bump them).

``RatingTask`` turns any such model into a rating model (``task = "rating"``):
``r_ui = mu + b_u + b_i + c_i + users(u) . items(i)`` trained with squared loss, where
``c_i`` is the model's content bias (if any) and ``b_i`` a free item bias.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmbench.errors import ConfigError, DataError
from mmbench.models import declared_modalities
from mmbench.nn import TorchRecommender, bpr_loss, l2

#: modalities a content model uses when present (any non-empty subset is enough)
CONTENT_MODALITIES = ("text", "image", "audio", "video")
MISSING_MODES = ("embed", "drop")


def content_features(model, features: dict | None, n_items: int) -> dict:
    """The features a content model may read: keys of its declared modalities. At least one
    is needed (a clear error otherwise); every matrix must be row-aligned to the items."""
    cls = type(model)
    requires, _, wanted = declared_modalities(cls)
    chosen = {k: f for k, f in sorted((features or {}).items()) if f.modality in wanted}
    name = cls.__name__
    missing = sorted(m for m in requires if not any(f.modality == m for f in chosen.values()))
    if missing:
        raise ConfigError(f"needs modality {missing} but got features {sorted(features or {}) or 'none'}",
                          where=f"model {name}", hint="extract the features first or choose another model")
    if not chosen:
        raise ConfigError(f"needs at least one content feature ({', '.join(sorted(wanted))}) but got "
                          f"{sorted(features or {}) or 'none'}", where=f"model {name}",
                          hint="extract features (`mmbench features extract`) or use a collaborative model "
                               "such as bpr")
    for k, f in chosen.items():
        if f.values.shape[0] != n_items or f.mask.shape != (n_items,):
            raise DataError(f"feature has {f.values.shape[0]} rows but the data has {n_items} items",
                            where=f"feature {k}", hint="features must be row-aligned to the item index")
    return chosen


def check_choice(value, allowed, param: str, model) -> None:
    if value not in allowed:
        raise ConfigError(f"{param}={value!r} is not one of {', '.join(map(repr, allowed))}",
                          where=f"model {type(model).__name__}")


def item_version(module: nn.Module) -> tuple:
    return tuple(p._version for p in module.parameters()) + tuple(b._version for b in module.buffers())


class ContentRecommender(TorchRecommender):
    """Base of the multimodal baselines: BPR training over the two towers, cached item
    table, single-matmul scoring. Subclasses implement ``build_module(data, features)``."""

    requires_any = CONTENT_MODALITIES

    def build_module(self, data, features: dict) -> nn.Module:
        raise NotImplementedError

    def build(self, data, features):
        feats = content_features(self, features, data.n_items)
        self.feature_keys_ = sorted(feats)
        self.table_cache_ = None
        return self.build_module(data, feats)

    # -- towers --------------------------------------------------------------------------------
    def item_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All item vectors and biases; cached while the parameters do not change and the
        module is in eval mode (dropout off)."""
        m = self.module_
        if m.training:
            return m.items(None)
        key = item_version(m)
        if self.table_cache_ is None or self.table_cache_[0] != key:
            with torch.no_grad():
                self.table_cache_ = (key, m.items(None))
        return self.table_cache_[1]

    # -- training ------------------------------------------------------------------------------
    def loss(self, batch):
        u, i, j = batch
        m = self.module_
        eu = m.users(u)
        vij, bij = m.items(torch.cat([i, j]))
        vi, vj = vij.split(len(i))
        pos, neg = (eu * vi).sum(-1), (eu * vj).sum(-1)
        if bij is not None:
            bi, bj = bij.split(len(i))
            pos, neg = pos + bi, neg + bj
        loss = bpr_loss(pos, neg)
        if self.reg:
            loss = loss + self.reg * l2(*m.penalized(u, i, j))
        return loss

    def score_module(self, users):
        eu = self.module_.users(users)
        v, b = self.item_table()
        s = eu @ v.T
        if b is not None:
            s = s + b
        return s


class _Biases(nn.Module):
    def __init__(self, n_users: int, n_items: int, mean: float):
        super().__init__()
        self.user = nn.Embedding(n_users, 1)
        self.item = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user.weight)
        nn.init.zeros_(self.item.weight)
        self.register_buffer("mean", torch.tensor(float(mean)))


class RatingTask:
    """Mixin (put first in the bases) making a ContentRecommender a rating model: squared
    loss on explicit ratings, L2 (``reg``) on the batch's user/item vectors and biases, early
    stopping on the validation metric the protocol chooses (RMSE on the rating track).
    Ranking uses the predicted rating."""

    task = "rating"

    def build(self, data, features):
        module = super().build(data, features)
        module.biases = _Biases(data.n_users, data.n_items, float(np.mean(data.rating)) if len(data) else 0.0)
        self.ratings_t_ = torch.as_tensor(data.rating, dtype=torch.float32, device=self.device_)
        return module

    def batches(self, data, epoch):
        n = len(data)
        perm = torch.randperm(n, generator=self.generator_).to(self.users_t_.device)
        for s in range(0, n, self.batch_size):
            idx = perm[s:s + self.batch_size]
            yield self.users_t_[idx], self.items_t_[idx], self.ratings_t_[idx]

    def _predict(self, u, i):
        m = self.module_
        eu = m.users(u)
        vi, ci = m.items(i)
        bu, bi = m.biases.user(u).squeeze(-1), m.biases.item(i).squeeze(-1)
        pred = m.biases.mean + bu + bi + (eu * vi).sum(-1)
        if ci is not None:
            pred = pred + ci
        return pred, (eu, vi, bu, bi)

    def loss(self, batch):
        u, i, r = batch
        pred, (eu, vi, bu, bi) = self._predict(u, i)
        reg = (eu.pow(2).sum(1) + vi.pow(2).sum(1) + bu.pow(2) + bi.pow(2)).mean()
        return nn.functional.mse_loss(pred, r) + self.reg * reg

    def score_module(self, users):
        m = self.module_
        eu = m.users(users)
        v, c = self.item_table()
        item_b = m.biases.item.weight.squeeze(-1) + (c if c is not None else 0.0)
        return m.biases.mean + m.biases.user(users) + item_b + eu @ v.T

    def predict(self, users, items):
        users = torch.as_tensor(users, dtype=torch.long, device=self.device_)
        items = torch.as_tensor(items, dtype=torch.long, device=self.device_)
        self.module_.eval()
        with torch.no_grad():
            return self._predict(users, items)[0]


class UserDotItem:
    """Mixin for the item towers of content models: score = user embedding (``user``) dot
    item vector. The item's ID embedding (``item_id()``, optional) is added to its content
    vector (``with_id``) and L2-penalised with the batch's user vectors (``penalized``)."""

    def item_id(self) -> nn.Embedding | None:
        return getattr(self, "id", None)

    def users(self, u):
        return self.user(u)

    def with_id(self, v, i):
        e = self.item_id()
        return v if e is None else v + (e.weight if i is None else e(i))

    def penalized(self, u, i, j):
        out = [self.user(u)]
        e = self.item_id()
        if e is not None:
            out += [e(i), e(j)]
        return out


def init_embedding(n: int, dim: int, std: float | None = None) -> nn.Embedding:
    e = nn.Embedding(n, dim)
    if std is None:
        nn.init.xavier_normal_(e.weight)
    else:
        nn.init.normal_(e.weight, std=std)
    return e
