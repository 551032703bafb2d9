"""Building blocks for multimodal models: item content as fixed tensors, per-modality
projections, and missing rows handled through the feature store's mask (never imputed
silently: a missing row gets a learned "missing" embedding or is dropped from fusion)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def standardize(values: np.ndarray, mask: np.ndarray, how: str = "standard") -> np.ndarray:
    """Scale one feature matrix using its present rows only; missing rows stay zero.

    ``standard``: zero mean / unit variance per column; ``l2``: unit-norm rows; ``none``.
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
    elif how != "none":
        raise ValueError(f"unknown normalisation {how!r}")
    x[~present] = 0.0
    return x


def by_modality(features: dict) -> dict[str, list]:
    """Group Feature objects by modality (``text``, ``image``, ``audio``...), keys sorted."""
    out: dict[str, list] = {}
    for key in sorted(features):
        out.setdefault(features[key].modality, []).append(features[key])
    return out


def concat_features(features: dict, how: str = "standard") -> tuple[np.ndarray, np.ndarray]:
    """All features side by side (sorted keys) and a per-item mask of rows with *any* content."""
    keys = sorted(features)
    if not keys:
        raise ValueError("no features")
    mats = [standardize(features[k].values, features[k].mask, how) for k in keys]
    mask = np.zeros(len(mats[0]), dtype=bool)
    for k in keys:
        mask |= features[k].mask
    return np.concatenate(mats, axis=1), mask


class ModalityProjector(nn.Module):
    """One linear (or 2-layer) projection per feature key into a shared ``dim``.

    ``forward(items)`` returns ``(emb, present)``: emb is (n_keys, b, dim), present is a
    bool (n_keys, b). Missing rows get a learned per-key missing embedding so that the
    model knows the content is absent instead of seeing zeros as content.
    """

    def __init__(self, features: dict, dim: int, *, how: str = "standard", hidden: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.keys = sorted(features)
        self.dim = dim
        for j, k in enumerate(self.keys):
            f = features[k]
            # not persistent: the features are inputs, not learned state (keeps checkpoints and
            # the best-epoch copy of the state dict small)
            self.register_buffer(f"x{j}", torch.as_tensor(standardize(f.values, f.mask, how)), persistent=False)
            self.register_buffer(f"m{j}", torch.as_tensor(f.mask.astype(bool)), persistent=False)
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

    def raw(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"x{j}"), getattr(self, f"m{j}")

    def forward(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        embs, masks = [], []
        for j, layer in enumerate(self.proj):
            x, m = self.raw(j)
            if items is not None:
                x, m = x[items], m[items]
            e = layer(x)
            e = torch.where(m.unsqueeze(-1), e, self.missing[j].expand_as(e))
            embs.append(e)
            masks.append(m)
        return torch.stack(embs), torch.stack(masks)

    @property
    def n_items(self) -> int:
        return int(self.x0.shape[0])
