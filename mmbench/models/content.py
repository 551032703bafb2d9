"""Building blocks of multimodal models: choosing a model's features, item content as fixed
tensors, per-modality projections with a learned "missing" embedding, and the two-tower
content model with its rating variant.

Missing rows come from the feature store's mask and are never imputed silently: a missing
row gets a learned embedding, is dropped from fusion, or, where a model is asked to
(``missing="impute"``), is imputed from the item's nearest neighbours by its other
modalities (:class:`NeighbourImputer`).

A content model's ``nn.Module`` exposes two towers whose dot product is the score:

- ``users(u) -> (b, D)``
- ``items(i or None) -> (vectors (n, D), bias (n,) or None)``; ``None`` = every item

so ranking is one ``(b, D) @ (D, n_items)`` matmul on the device, with the item table
computed once per parameter state (:class:`~.torch_base.ParameterCache`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
import dataclasses
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from .base import declared_modalities
from .params import Param
from .torch_base import ParameterCache, TorchRecommender, bpr_loss, l2

#: modalities a content model uses when present (any non-empty subset is enough): besides the
#: media embeddings, ``meta`` (item attributes, e.g. ml-100k's genre multi-hot) and ``kg``
#: (knowledge-graph embeddings of the item's entity) are item side information too
CONTENT_MODALITIES = ("text", "image", "audio", "video", "meta", "kg")
MISSING_MODES = ("embed", "drop", "impute")
#: neighbours averaged by :class:`NeighbourImputer` (k-NN imputation's customary 10)
IMPUTE_K = 10


def modality_of(key: str) -> str:
    """``'text/all-MiniLM-L6-v2'`` -> ``'text'``."""
    return key.split("/", 1)[0]


def select_features(model_cls, available: Mapping, *, n_items: int | None = None) -> dict:
    """The features a model of ``model_cls`` reads from ``available`` (key -> Feature; a
    lazy mapping is only read for the keys chosen): every key of a modality the class
    declares. A required modality without a feature, or no feature of a ``requires_any``
    group, is a ConfigError before training; with ``n_items`` each matrix must have one row
    per item."""
    requires, any_of, wanted = declared_modalities(model_cls)
    chosen = {k: available[k] for k in sorted(available) if modality_of(k) in wanted}
    have = {modality_of(k) for k in chosen}
    where, given = f"model {model_cls.__name__}", sorted(available) or "none"
    missing = sorted(requires - have)
    if missing:
        raise ConfigError(f"needs modality {missing} but got features {given}", where=where,
                          hint="extract the features first (`mmbench features extract`) or choose another model")
    if any_of and not any_of & have:
        raise ConfigError(f"needs at least one content feature ({', '.join(sorted(any_of))}) but got {given}",
                          where=where, hint="extract features (`mmbench features extract`) or use a collaborative "
                                            "model such as bpr")
    for k, f in chosen.items():
        if n_items is not None and (f.values.shape[0] != n_items or f.mask.shape != (n_items,)):
            raise DataError(f"feature has {f.values.shape[0]} rows but the data has {n_items} items",
                            where=f"feature {k}", hint="features must be row-aligned to the item index")
    return chosen


#: how a content model reads its features (its ``features`` parameter; see :func:`standardize`)
FEATURE_PREPROCESSING = ("raw", "standard", "l2", "maxabs", "pca")


def standardize(values: np.ndarray, mask: np.ndarray, how: str = "standard", *, pca_dim: int = 64) -> np.ndarray:
    """One feature matrix preprocessed from its present rows only (float32; missing rows zero).

    ``raw``: as stored; ``standard``: zero mean / unit variance per column (a constant column
    is only centred); ``l2``: unit-norm rows; ``maxabs``: divided by the largest absolute
    value of the matrix (AMR's released code); ``pca``: centred and projected on the
    ``pca_dim`` principal axes of the present rows (all of them when there are fewer),
    each axis signed so that its largest coefficient is positive: deterministic.
    """
    x = values.astype(np.float32, copy=True)
    present = mask.astype(bool)
    if how == "standard":
        if present.any():  # a key with no present row stays all zero
            mu = x[present].mean(0)
            sd = x[present].std(0)
            sd[sd < 1e-8] = 1.0
            x[present] = (x[present] - mu) / sd
    elif how == "l2":
        n = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(n, 1e-12)
    elif how == "maxabs":
        top = float(np.abs(x[present]).max()) if present.any() else 0.0
        x = x / top if top > 0 else x
    elif how == "pca":
        x = _principal_components(x, present, pca_dim)
    elif how != "raw":
        raise ValueError(f"unknown preprocessing {how!r}: one of {FEATURE_PREPROCESSING}")
    x[~present] = 0.0
    return x


def _principal_components(x: np.ndarray, present: np.ndarray, k: int) -> np.ndarray:
    """The present rows of ``x`` centred and projected on their ``k`` leading principal axes
    (eigenvectors of the scatter matrix, in float64), each axis signed so that its largest
    coefficient is positive; (n, min(k, d)) float32."""
    k = min(int(k), x.shape[1])
    out = np.zeros((x.shape[0], k), np.float32)
    if present.any():
        rows = x[present].astype(np.float64)
        centred = rows - rows.mean(0)
        _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        axes = vectors[:, ::-1][:, :k]
        axes = axes * np.sign(axes[np.abs(axes).argmax(0), np.arange(k)])
        out[present] = centred @ axes
    return out


@dataclass(frozen=True)
class ContentFeature:
    """A feature as a content model reads it: its rows preprocessed (float32, missing rows
    zero; see :func:`standardize`), the present mask, and whether the model fine-tunes the
    rows (they become a parameter initialised from these values)."""

    key: str
    values: np.ndarray
    mask: np.ndarray
    finetune: bool = False

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def modality(self) -> str:
        return modality_of(self.key)


def register_content(module: nn.Module, j: int, feature) -> None:
    """Makes ``feature`` (a :class:`ContentFeature`, or any feature read as it is) the j-th
    content input of ``module``: its rows ``x{j}``, a parameter when the feature is
    fine-tuned and otherwise a buffer left out of the state dict (an input, not learned
    state: checkpoints and the best-epoch copy stay small), and its present mask ``m{j}``, a
    bool buffer (what :func:`modality_dropped` switches)."""
    x = torch.as_tensor(feature.values)
    if getattr(feature, "finetune", False):
        module.register_parameter(f"x{j}", nn.Parameter(x.clone()))  # its own copy: updated in place
    else:
        module.register_buffer(f"x{j}", x, persistent=False)
    module.register_buffer(f"m{j}", torch.as_tensor(feature.mask.astype(bool)), persistent=False)


class ContentFeatures:
    """Mixin of a model that reads pre-extracted content features: how they are preprocessed
    (``features``, ``pca_dim``) and whether they are fine-tuned (``finetune_features``).
    Declared, so every run record carries the choice and a run can match a reference
    implementation's (``-p features=raw -p finetune_features=true``). A model that follows
    a reference gives them the reference's defaults (class keywords); a model with nothing
    to fine-tune hides ``finetune_features`` (a plain class attribute ``False``)."""

    features = Param("standard", choices=FEATURE_PREPROCESSING,
                     help="preprocessing of each feature key, from its present rows: raw, z-scored columns "
                          "(standard), unit-norm rows (l2), scaled by the largest |value| (maxabs), principal "
                          "components (pca)")
    pca_dim = Param(64, ge=1, help="features=pca: principal components kept per feature key")
    finetune_features = Param(False, help="learn the preprocessed feature rows with the model (as BM3's and "
                                          "FREEDOM's released code do) instead of keeping them fixed")

    def drop_modality(self, key: str, items=None):
        """A context manager: within it the fitted model scores as if feature ``key`` were
        missing for ``items`` (indices or a bool mask; None = every item), e.g. to measure
        robustness to a modality absent at test time::

            with model.drop_modality("image/efficientnet-lite0", cold_items):
                metrics = evaluate_ranking(model.score, ds, "test", ["ndcg@20"]).metrics

        By default the presence masks of the fitted ``module_`` are switched
        (:func:`modality_dropped`); a model whose scores depend on the features through
        something built from them in ``fit`` (a kNN item graph, a similarity matrix)
        overrides it and rebuilds that."""
        return modality_dropped(self.module_, key, items)

    def content_features(self, data, features: Mapping) -> dict[str, ContentFeature]:
        """The features the model reads (chosen and checked by :func:`select_features`),
        preprocessed as its parameters say; sets ``feature_keys_``."""
        chosen = select_features(type(self), features, n_items=data.n_items)
        self.feature_keys_ = sorted(chosen)
        return {k: ContentFeature(k, standardize(f.values, f.mask, self.features, pca_dim=self.pca_dim),
                                  f.mask.astype(bool), bool(self.finetune_features)) for k, f in chosen.items()}


def features_without(features: Mapping, key: str, items=None) -> dict:
    """``features`` (key -> :class:`ContentFeature`) with ``key`` marked missing for ``items``
    (indices or a bool mask; None = every item): what a model rebuilds a structure it made
    from its features in ``fit`` from, inside its ``drop_modality``. The values are kept,
    preprocessed as at training time; only the mask changes."""
    if key not in features:
        raise ConfigError(f"cannot drop feature {key!r}: the model reads {sorted(features)}", where="drop_modality")
    mask = features[key].mask.copy()
    mask[slice(None) if items is None else np.asarray(items)] = False
    return {**features, key: dataclasses.replace(features[key], mask=mask)}


def neighbour_fills(xs: list[torch.Tensor], ms: list[torch.Tensor], k: int = IMPUTE_K,
                    chunk: int = 4096) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """Cross-modal k-NN imputation of missing rows, per key j: ``(rows, values)`` or None.

    An item missing key j takes, for each other key l it has, the mean key-j row of its
    ``k`` nearest items by cosine on key l among the items that have both j and l (all of
    them when there are fewer); the fill is the mean over those keys l. An item with no
    other key, or with no such donor, stays missing (it is not in ``rows``). Computed from
    the values as given (no gradient), in row chunks (no n_items x n_items matrix)."""
    with torch.no_grad():
        normed = [torch.nn.functional.normalize(x.detach().float(), dim=1) for x in xs]
        fills = []
        for j, (x, m) in enumerate(zip(xs, ms)):
            need = ~m
            if not bool(need.any()) or not bool(m.any()) or len(xs) < 2:
                fills.append(None)
                continue
            acc = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
            count = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
            for l in range(len(xs)):
                src = torch.nonzero(need & ms[l]).squeeze(1)
                donors = torch.nonzero(m & ms[l]).squeeze(1)
                if l == j or not len(src) or not len(donors):
                    continue
                kk, pool = min(k, len(donors)), normed[l][donors].T
                for rows in src.split(chunk):
                    nearest = donors[(normed[l][rows] @ pool).topk(kk, dim=1).indices]
                    acc[rows] += x.detach().float()[nearest].mean(1)
                    count[rows] += 1.0
            rows = torch.nonzero(count > 0).squeeze(1)
            fills.append((rows, (acc[rows] / count[rows, None]).to(x.dtype)) if len(rows) else None)
        return fills


class NeighbourImputer:
    """The imputed content inputs of a module (``missing="impute"``): each key's rows with
    the missing ones filled by :func:`neighbour_fills` and the mask of rows that now hold
    content. The fills are constants recomputed only when a mask or a row changes (version
    counters: a test-time drop, or an optimiser step on fine-tuned rows); present rows stay
    the module's own tensors, so fine-tuning still reaches them."""

    def __init__(self, k: int = IMPUTE_K):
        self.k = k
        self._key, self._fills = None, None

    def __call__(self, xs: list[torch.Tensor], ms: list[torch.Tensor]):
        key = tuple((id(t), t._version) for t in [*xs, *ms])
        if key != self._key:
            self._fills, self._key = neighbour_fills(xs, ms, self.k), key
        out_x, out_m = [], []
        for x, m, fill in zip(xs, ms, self._fills):
            if fill is not None:
                rows, values = fill
                x, m = x.index_put((rows,), values), m.index_put((rows,), torch.ones_like(rows, dtype=torch.bool))
            out_x.append(x)
            out_m.append(m)
        return out_x, out_m


def content_inputs(module: nn.Module, imputer: NeighbourImputer | None = None):
    """The content inputs of ``module`` (its ``x{j}`` rows and ``m{j}`` masks, one per key),
    imputed when an ``imputer`` is given."""
    n = len(module.keys)
    xs, ms = [getattr(module, f"x{j}") for j in range(n)], [getattr(module, f"m{j}") for j in range(n)]
    return imputer(xs, ms) if imputer is not None else (xs, ms)


class ModalityProjector(nn.Module):
    """One linear (or 2-layer) projection per feature key into a shared ``dim``, reading the
    features as given (a content model's :meth:`ContentFeatures.content_features`:
    preprocessed, fixed or fine-tuned).

    ``forward(items)`` returns ``(emb, present)``: emb is (n_keys, b, dim), present is a
    bool (n_keys, b). Missing rows get a learned per-key missing embedding so that the
    model knows the content is absent instead of seeing zeros as content. With
    ``impute=True`` a missing row is first imputed from the item's other modalities
    (:class:`NeighbourImputer`), projected like content and reported present; only a row
    with nothing to impute from keeps the learned embedding.
    """

    def __init__(self, features: dict, dim: int, *, hidden: int | None = None, dropout: float = 0.0,
                 impute: bool = False):
        super().__init__()
        self.keys = sorted(features)
        self.dim = dim
        for j, k in enumerate(self.keys):
            register_content(self, j, features[k])
        layers = []
        for k in self.keys:
            d = features[k].dim
            if hidden:
                layers.append(nn.Sequential(nn.Linear(d, hidden), nn.LeakyReLU(), nn.Dropout(dropout),
                                            nn.Linear(hidden, dim)))
            else:
                layers.append(nn.Sequential(nn.Dropout(dropout), nn.Linear(d, dim)))
        self.proj = nn.ModuleList(layers)
        self.missing = nn.Parameter(torch.zeros(len(self.keys), dim))
        nn.init.normal_(self.missing, std=0.01)
        self.imputer = NeighbourImputer() if impute else None

    def raw(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"x{j}"), getattr(self, f"m{j}")

    def forward(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        embs, masks = [], []
        xs, ms = content_inputs(self, self.imputer)
        for layer, x, m in zip(self.proj, xs, ms):
            if items is not None:
                x, m = x[items], m[items]
            e = layer(x)
            e = torch.where(m.unsqueeze(-1), e, self.missing[len(embs)].expand_as(e))
            embs.append(e)
            masks.append(m)
        return torch.stack(embs), torch.stack(masks)

    @property
    def n_items(self) -> int:
        return int(self.x0.shape[0])


def init_embedding(n: int, dim: int, std: float | None = None) -> nn.Embedding:
    """An embedding table, xavier-normal (``std=None``) or N(0, std)."""
    e = nn.Embedding(n, dim)
    if std is None:
        nn.init.xavier_normal_(e.weight)
    else:
        nn.init.normal_(e.weight, std=std)
    return e


def content_masks(module: nn.Module) -> dict[str, list[torch.Tensor]]:
    """Feature key -> the present-mask buffers that ``module`` reads it through: every
    submodule holding item content the way :class:`ModalityProjector` does (a ``keys`` list
    and, for the j-th key, a bool buffer ``m{j}`` of one row per item)."""
    out: dict[str, list[torch.Tensor]] = {}
    for sub in module.modules():
        keys = getattr(sub, "keys", None)
        if isinstance(keys, list):
            for j, k in enumerate(keys):
                m = getattr(sub, f"m{j}", None)
                if isinstance(m, torch.Tensor) and m.dtype == torch.bool:
                    out.setdefault(k, []).append(m)
    return out


@contextlib.contextmanager
def modality_dropped(module: nn.Module, key: str, items=None) -> Iterator[None]:
    """Within the block, ``module`` sees feature ``key`` as missing for ``items`` (item
    indices or a bool mask over the items; None = every item), exactly as if the feature
    store's mask said so; the masks are restored on exit. Tables cached from the parameters
    and buffers (:class:`~.torch_base.ParameterCache`) are recomputed, since the masks change
    in place. Only what the module reads from its content inputs at scoring time changes:
    structures built from the features during ``fit`` (a kNN item graph) are not rebuilt."""
    masks = content_masks(module)
    if key not in masks:
        raise ConfigError(f"cannot drop feature {key!r}: the model reads {sorted(masks) or 'no features'}",
                          where="drop_modality")
    saved = [m.clone() for m in masks[key]]
    try:
        rows = slice(None) if items is None else torch.as_tensor(items)
        if isinstance(rows, torch.Tensor) and rows.dtype != torch.bool:
            rows = rows.long()
        for m in masks[key]:
            m[rows if isinstance(rows, slice) else rows.to(m.device)] = False
        yield
    finally:
        for m, before in zip(masks[key], saved):
            m.copy_(before)


class ContentRecommender(ContentFeatures, TorchRecommender):
    """Base of the two-tower multimodal models: BPR training over the towers, cached item
    table, single-matmul scoring. Subclasses implement ``build_module(data, features)``
    (features chosen and checked by :func:`select_features`, then preprocessed as the
    model's ``features`` / ``finetune_features`` parameters say: :class:`ContentFeature`)."""

    requires_any = CONTENT_MODALITIES
    reg = Param(0.0, ge=0.0, help="L2 weight on the batch's user (and ID) embeddings")

    def build_module(self, data, features: dict) -> nn.Module:
        raise NotImplementedError

    def build(self, data, features):
        feats = self.content_features(data, features)
        self.table_cache_ = ParameterCache()
        return self.build_module(data, feats)

    def item_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All item vectors and biases (cached while the parameters do not change)."""
        return self.table_cache_.get(self.module_, lambda: self.module_.items(None))

    def batch_items(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The item tower's vectors and biases of a batch's items (with repeats), computed once
        per distinct item and gathered: a batch of 2,048 BPR triples names about 1,300
        distinct items on ml-100k, so the tower costs a third (the result is the same up to
        float summation order; dropout inside the tower is drawn once per distinct item, as
        in MMRec's models, which compute every item's vector per step)."""
        once, inverse = torch.unique(items, return_inverse=True)
        v, b = self.module_.items(once)
        return v[inverse], (None if b is None else b[inverse])

    def loss(self, batch):
        u, i, j = batch
        m = self.module_
        eu = m.users(u)
        vij, bij = self.batch_items(torch.cat([i, j]))
        vi, vj = vij.split(len(i))
        pos, neg = (eu * vi).sum(-1), (eu * vj).sum(-1)
        if bij is not None:
            bi, bj = bij.split(len(i))
            pos, neg = pos + bi, neg + bj
        loss = bpr_loss(pos, neg)
        if self.reg:
            loss = loss + self.reg * self.penalty(u, i, j, (eu, vi, vj))
        return loss

    def penalty(self, u, i, j, vectors: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The regulariser that ``reg`` weighs: :func:`~.torch_base.l2` of the module's
        ``penalized(u, i, j)`` embeddings. ``vectors`` = (user, positive item, negative
        item) vectors of the batch as scored, for a model that penalises those instead."""
        return l2(*self.module_.penalized(u, i, j))

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
        return rating_batches(self, data)

    def _predict(self, u, i):
        m = self.module_
        eu = m.users(u)
        vi, ci = self.batch_items(i)
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


def rating_batches(model, data):
    """(users, items, ratings) mini-batches of the training pairs in a fresh random order
    (``model.ratings_t_`` holds the ratings on the device)."""
    n = len(data)
    perm = torch.randperm(n, generator=model.generator_).to(model.users_t_.device)
    for s in range(0, n, model.batch_size):
        idx = perm[s:s + model.batch_size]
        yield model.users_t_[idx], model.items_t_[idx], model.ratings_t_[idx]


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
