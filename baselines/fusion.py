"""Early, late and hybrid fusion of item modalities (and rank-level fusion via ranx).

Taxonomy after Atrey et al., "Multimodal fusion for multimedia analysis: a survey"
(Multimedia Systems, 2010) and Baltrušaitis, Ahuja & Morency, "Multimodal Machine
Learning: A Survey and Taxonomy" (TPAMI, 2019): *early* fusion joins the features before
any model sees them, *late* fusion joins the decisions (scores or rankings) of one model
per modality, *hybrid* fusion does both.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmbench.models import (MISSING_MODES, ContentRecommender, ModalityProjector, NeighbourImputer, Param, RatingTask,
                            UserDotItem, content_inputs, init_embedding, register_content)

#: ranx fusion methods that need no training data (the model never sees validation labels)
RANK_FUSION_METHODS = ("rrf", "isr", "log_isr", "logn_isr", "sum", "max", "min", "med", "anz", "mnz", "gmnz",
                       "wsum", "wmnz", "bordafuse", "w_bordafuse", "condorcet", "w_condorcet", "rbc")
_WEIGHTED = {"wsum", "wmnz", "w_bordafuse", "w_condorcet"}


class ContentInput(nn.Module):
    """Every key's features side by side (as the model preprocessed them: its ``features``
    parameter), plus one presence flag per key.

    A missing row is replaced by a learned vector of that key (``missing="embed"``), left
    at zero (``"drop"``) or imputed from the item's other modalities (``"impute"``:
    :class:`~mmbench.models.NeighbourImputer`; the flag then says present, and a row with
    nothing to impute from stays zero); the flags tell the next layer what is absent.
    """

    def __init__(self, features: dict, missing: str = "embed"):
        super().__init__()
        self.keys = sorted(features)
        self.missing_mode = missing
        for j, k in enumerate(self.keys):
            register_content(self, j, features[k])
        self.missing = nn.ParameterList(
            [nn.Parameter(torch.zeros(features[k].dim)) for k in self.keys] if missing == "embed" else [])
        self.dim = sum(features[k].dim for k in self.keys) + len(self.keys)
        self.imputer = NeighbourImputer() if missing == "impute" else None

    def forward(self, items=None):
        parts, flags = [], []
        xs, ms = content_inputs(self, self.imputer)
        for j, (x, m) in enumerate(zip(xs, ms)):
            if items is not None:
                x, m = x[items], m[items]
            if self.missing_mode == "embed":
                x = torch.where(m.unsqueeze(-1), x, self.missing[j].expand_as(x))
            parts.append(x)
            flags.append(m.to(x.dtype))
        return torch.cat(parts + [torch.stack(flags, -1)], -1)


def mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, d_out))


class _EarlyTower(nn.Module):
    """Concatenated content (+ optional ID embedding) -> MLP -> item vector."""

    def __init__(self, features, n_items, dim, hidden, dropout, missing, use_id):
        super().__init__()
        self.input = ContentInput(features, missing)
        self.id = init_embedding(n_items, dim, 0.01) if use_id else None
        self.net = mlp(self.input.dim + (dim if use_id else 0), hidden, dim, dropout)

    def forward(self, items=None):
        x = self.input(items)
        if self.id is not None:
            x = torch.cat([x, self.id.weight if items is None else self.id(items)], -1)
        return self.net(x)


class _EarlyFusion(UserDotItem, nn.Module):
    def __init__(self, features, n_users, n_items, dim, hidden, dropout, missing, use_id):
        super().__init__()
        self.user = init_embedding(n_users, dim)
        self.tower = _EarlyTower(features, n_items, dim, hidden, dropout, missing, use_id)

    def item_id(self):
        return self.tower.id  # an input of the tower here, not added to its output

    def items(self, i):
        return self.tower(i), None


class _Scorers(nn.Module):
    """Several scorers, each a user embedding dotted with an item vector, summed with learned
    weights (softmax over scorers, times their number: all start at 1). Stacking the weighted
    user parts and the item parts makes the weighted sum a single dot product.

    Scorers: ``early`` (MLP over the concatenated content, for hybrid fusion), one per feature
    key (its own affine projection; a missing row scores 0 with ``missing="drop"`` or uses a
    learned vector with ``"embed"``), and ``id`` (plain MF).
    """

    def __init__(self, features, n_users, n_items, dim, *, early, late, use_id, missing, hidden=256, dropout=0.0):
        super().__init__()
        self.names: list[str] = []
        self.dim = dim
        self.missing_mode = missing
        if early:
            self.early = _EarlyTower(features, n_items, dim, hidden, dropout, missing, use_id=False)
            self.names.append("early")
        if late:
            self.proj = ModalityProjector(features, dim, impute=missing == "impute")
            self.names.extend(sorted(features))
        if use_id:
            self.item_id = init_embedding(n_items, dim)
            self.names.append("id")
        self.user = init_embedding(n_users, dim * len(self.names))
        self.logits = nn.Parameter(torch.zeros(len(self.names)))

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, 0) * len(self.names)

    def user_parts(self, u) -> torch.Tensor:
        return self.user(u).view(len(u), len(self.names), self.dim)

    def item_parts(self, i) -> list[torch.Tensor]:
        parts = []
        if "early" in self.names:
            parts.append(self.early(i))
        if hasattr(self, "proj"):
            emb, present = self.proj(i)
            if self.missing_mode == "drop":
                emb = emb * present.unsqueeze(-1).to(emb.dtype)
            parts.extend(emb.unbind(0))
        if "id" in self.names:
            parts.append(self.item_id.weight if i is None else self.item_id(i))
        return parts

    def users(self, u):
        return (self.user_parts(u) * self.weights().view(1, -1, 1)).reshape(len(u), -1)

    def items(self, i):
        return torch.cat(self.item_parts(i), -1), None

    def penalized(self, u, i, j):
        out = [self.user(u)]
        if "id" in self.names:
            out += [self.item_id(i), self.item_id(j)]
        return out


class EarlyFusion(ContentRecommender):
    """Early fusion: the modality features are concatenated (a missing row is a learned
    per-key vector, plus a presence flag per key), optionally with the item's ID embedding,
    and an MLP item tower maps them to the item vector; the score is its dot product with a
    user embedding, trained with BPR. The fusion taxonomy is from Atrey et al. (Multimedia
    Systems 2010) and Baltrušaitis et al. (TPAMI 2019); the two-tower shape follows
    Covington, Adams & Sargin, "Deep Neural Networks for YouTube Recommendations" (RecSys
    2016). These papers fix no hyper-parameters for this setting: defaults are the
    benchmark's (64-d, one 256-unit ReLU layer, dropout 0.1, Adam lr 1e-3, batch 2048, early
    stopping, features z-scored per column and kept fixed: ``features``,
    ``finetune_features``). ``use_id=False`` gives a pure content model.
    Uses any non-empty subset of text/image/audio/video.
    """

    paper = "Atrey et al., Multimedia Systems 2010; Baltrušaitis et al., TPAMI 2019"
    embedding_dim = Param(64, ge=1, help="size of the user and item vectors")
    hidden_dim = Param(256, ge=1, help="units of the item tower's hidden layer")
    dropout = Param(0.1, ge=0.0, lt=1.0, help="dropout in the item tower")
    use_id = Param(True, help="feed the item's ID embedding to the tower with its content")
    missing = Param("embed", choices=MISSING_MODES,
                    help="a missing row: a learned vector (embed), zeros (drop) or imputed "
                         "from the item's other modalities (impute)")

    def build_module(self, data, features):
        return _EarlyFusion(features, data.n_users, data.n_items, self.embedding_dim, self.hidden_dim,
                            self.dropout, self.missing, self.use_id)


class EarlyFusionRating(RatingTask, EarlyFusion, embedding_dim=32, hidden_dim=128, lr=5e-3, reg=0.05,
                        batch_size=1024, epochs=100, patience=5):
    """Early fusion for explicit ratings (the rating track): r_ui = mu + b_u + b_i +
    p_u . MLP([content; ID]), squared loss, L2 on the batch's vectors and biases (``reg``),
    early stopping on validation RMSE. Defaults as ``mf`` (lr 5e-3, reg 0.05, batch 1024)
    with the early-fusion tower (32-d, 128 hidden units)."""

    reg = Param(0.05, ge=0.0, space=(0.005, 0.05, 0.5), help="L2 weight on the batch's vectors and biases")


class _FusionScoring:
    """Shared by late and hybrid fusion: the learned weights, and optional rank-level fusion."""

    embedding_dim = Param(64, ge=1, help="size of each scorer's user and item vectors")
    use_id = Param(True, help="add an ID scorer (plain MF) to the content scorers")
    missing = Param("drop", choices=MISSING_MODES,
                    help="a missing row: scores 0 (drop), a learned vector (embed) or imputed "
                         "from the item's other modalities (impute)")
    rank_fusion = Param(None, type=str, choices=RANK_FUSION_METHODS, nullable=True,
                        help="fuse the scorers' rankings with this ranx method instead of summing scores")
    fusion_depth = Param(100, ge=1, help="items per scorer's ranking that rank fusion sees")

    def fusion_weights(self) -> dict[str, float]:
        """Learned weight of each scorer (they average to 1)."""
        w = self.module_.weights().detach().cpu().tolist()
        return dict(zip(self.module_.names, w))

    def build(self, data, features):
        module = super().build(data, features)
        if self.rank_fusion is not None:
            indptr, indices = data.csr
            self.train_csr_ = (torch.as_tensor(indptr, device=self.device_),
                               torch.as_tensor(indices, device=self.device_))
        return module

    def score_module(self, users):
        if self.rank_fusion is None:
            return super().score_module(users)
        m = self.module_
        up = m.user_parts(users)
        v, _ = self.item_table()
        vp = v.view(v.shape[0], len(m.names), m.dim)
        blocks = [up[:, s] @ vp[:, s].T for s in range(len(m.names))]
        base = super().score_module(users)
        return rank_fuse(blocks, method=self.rank_fusion, depth=self.fusion_depth,
                         weights=m.weights().tolist(), exclude=_rows(self.train_csr_, users), base=base)


def _rows(csr, users):
    """(row, col) of the training items of ``users`` (row = position in the batch)."""
    indptr, indices = csr
    starts = indptr[users]
    counts = indptr[users + 1] - starts
    row = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
    first = torch.cumsum(counts, 0) - counts
    offs = torch.arange(row.numel(), device=users.device) - torch.repeat_interleave(first, counts)
    return row, indices[torch.repeat_interleave(starts, counts) + offs]


def rank_fuse(blocks: list[torch.Tensor], *, method: str = "rrf", depth: int = 100, weights=None,
              exclude: tuple[torch.Tensor, torch.Tensor] | None = None, base: torch.Tensor | None = None,
              norm: str | None = "min-max", params: dict | None = None) -> torch.Tensor:
    """Fuse the rankings of several scorers with a ranx fusion method (Bassani & Romelli,
    "ranx.fuse: A Python Library for Metasearch", CIKM 2022).

    ``blocks``: (b, n) score tensors, one per scorer. Each is cut to its top ``depth`` items
    (``exclude`` = (row, col) pairs left out, e.g. the users' training items), the runs are
    fused, and the result is returned as a (b, n) score tensor on the blocks' device: fused
    items score in (1, 2] by fused rank (ties by item index), every other item scores in
    (-1, 0) ordered by ``base`` (default: the sum of the blocks), so the ranking continues
    below the fused list (needed when the protocol masks more items than ``exclude``).
    ranx runs on the CPU: this is an option for analysis, not a hot path.
    """
    from ranx import Run, fuse

    b, n = blocks[0].shape
    device = blocks[0].device
    depth = max(1, min(int(depth), n))
    if base is None:
        base = torch.stack(blocks).sum(0)
    out = (torch.tanh(base.float()) - 1.0) / 2.0  # (-1, 0), same order as base
    lists = []
    for s in blocks:
        s = s.float().clone()
        if exclude is not None and exclude[0].numel():
            s[exclude[0], exclude[1]] = -torch.inf
        v, i = torch.topk(s, depth, dim=1)
        lists.append((v.cpu().numpy(), i.cpu().numpy()))
    runs = []
    for v, i in lists:
        runs.append({str(r): {str(int(d)): float(x) for d, x in zip(i[r], v[r]) if np.isfinite(x)} for r in range(b)})
    active = [r for r in range(b) if all(run[str(r)] for run in runs)]
    if not active:
        return out
    if len(runs) == 1:
        fused = {q: runs[0][q] for q in map(str, active)}
    else:
        kwargs = dict(params or {})
        if method in _WEIGHTED and weights is not None and "weights" not in kwargs:
            kwargs["weights"] = [float(w) for w in weights]
        ranx_runs = [Run.from_dict({str(r): run[str(r)] for r in active}) for run in runs]
        fused = fuse(ranx_runs, norm=norm, method=method, params=kwargs).to_dict()
    for q, docs in fused.items():
        r = int(q)
        ranked = sorted(docs.items(), key=lambda kv: (-kv[1], int(kv[0])))
        items = torch.as_tensor([int(d) for d, _ in ranked], dtype=torch.long, device=device)
        out[r, items] = 2.0 - torch.arange(len(items), device=device, dtype=out.dtype) / max(len(items), 1)
    return out


class LateFusion(_FusionScoring, ContentRecommender):
    """Late fusion: one scorer per modality feature (user embedding . affine projection of
    the item's content) and one ID scorer (MF), summed with learned weights (softmax, they
    average to 1; see ``fusion_weights()``), trained jointly with BPR. A missing content
    row scores 0 in its scorer (``missing="drop"``), uses a learned vector (``"embed"``) or
    is imputed from the item's other modalities (``"impute"``, k-NN by each other key).

    ``rank_fusion`` (e.g. ``"rrf"``, ``"wsum"``, ``"bordafuse"``; see
    ``RANK_FUSION_METHODS``) replaces score fusion at ranking time by rank-level fusion of
    the per-scorer rankings (top ``fusion_depth`` each, training items left out) with
    ranx (Bassani & Romelli, CIKM 2022); RRF is Cormack, Clarke & Büttcher (SIGIR 2009).
    Taxonomy: Atrey et al. (2010), Baltrušaitis et al. (TPAMI 2019). Defaults are the
    benchmark's (64-d per scorer, Adam lr 1e-3, batch 2048, early stopping, features
    z-scored per column and kept fixed).
    Uses any non-empty subset of text/image/audio/video.
    """

    paper = "Atrey et al., Multimedia Systems 2010; Cormack et al., SIGIR 2009 (RRF)"

    def build_module(self, data, features):
        return _Scorers(features, data.n_users, data.n_items, self.embedding_dim, early=False, late=True,
                        use_id=self.use_id, missing=self.missing)


class HybridFusion(_FusionScoring, ContentRecommender):
    """Hybrid fusion: an early-fused scorer (MLP over the concatenated content, as in
    ``early-fusion`` without the ID input) plus the late per-modality scorers and an ID
    scorer, summed with learned weights (``fusion_weights()``), trained jointly with BPR.
    Atrey et al. (Multimedia Systems 2010) call this hybrid fusion. Defaults are the
    benchmark's (64-d per scorer, 256 hidden units, dropout 0.1, Adam lr 1e-3, batch 2048,
    features z-scored per column and kept fixed).
    ``rank_fusion`` works as in ``late-fusion``. Uses any non-empty subset of
    text/image/audio/video.
    """

    paper = "Atrey et al., Multimedia Systems 2010"
    hidden_dim = Param(256, ge=1, help="units of the early-fused scorer's hidden layer")
    dropout = Param(0.1, ge=0.0, lt=1.0, help="dropout in the early-fused scorer")

    def build_module(self, data, features):
        return _Scorers(features, data.n_users, data.n_items, self.embedding_dim, early=True, late=True,
                        use_id=self.use_id, missing=self.missing, hidden=self.hidden_dim, dropout=self.dropout)
