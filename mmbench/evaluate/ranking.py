"""Full ranking on the device: batches of users, mask seen items, top-k, metrics on tensors.

Never sampled: every item is a candidate except those the protocol masks. Memory is
bounded by one (batch x n_items) score block; no n_users x n_items matrix is built.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ConfigError, TrainingError
from . import kernels as K
from . import metrics as M

ScoreFn = Callable[["torch.Tensor"], "torch.Tensor"]  # noqa: F821


@dataclass
class EvalResult:
    split: str
    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray
    seconds: float
    topk: np.ndarray | None = None
    aggregate: dict[str, float] = field(default_factory=dict)


def default_batch_users(n_items: int, budget: int = 1 << 23) -> int:
    return max(1, budget // max(1, n_items))


def item_groups(train_popularity: np.ndarray, names=("cold", "tail")) -> dict[str, np.ndarray]:
    """Boolean masks over items of the item groups ``names`` (registry entries of kind
    item-group, e.g. ``cold``: no training interaction; ``tail``: outside the top 20% of
    items by training popularity, ties broken by item index)."""
    out = {}
    for g in names:
        m = M.get(g)
        if m.kind != "item-group":
            raise ConfigError(f"{g!r} is not an item group", hint=f"item groups: {', '.join(M.names('item-group'))}")
        out[g] = m.fn(train_popularity)
    return out


@dataclass
class _Plan:
    """What one pass computes: plain metrics, metrics per item group, the ranking depth."""

    plain: list[str]
    by_group: dict[str, list[str]]
    maxk: int

    @property
    def names(self) -> list[str]:
        return self.plain + [f"{b}/{g}" for g, bs in self.by_group.items() for b in bs]


def _plan(metric_names: list[str], groups: dict | None, n_items: int) -> _Plan:
    plain, by_group = [], {}
    for n in metric_names:
        base, g = M.split_group(n)
        if g is None:
            plain.append(M.canonical(base))
        elif groups is None or g not in groups:
            raise ConfigError(f"metric {n!r} needs the item group {g!r}", hint="pass groups=item_groups(...)")
        else:
            by_group.setdefault(g, []).append(M.canonical(base))
    bases = plain + [b for bs in by_group.values() for b in bs]
    for b in bases:
        if M.get(b).kind != "ranking":
            raise ConfigError(f"metric {b!r} is not a ranking metric", hint="evaluate_ranking adds the beyond-accuracy "
                              "metrics itself; rating metrics come from evaluate_rating")
    ks = [M.parse_metric(b)[1] for b in bases]
    return _Plan(plain, by_group, min(max(ks), n_items) if ks else min(20, n_items))


def rank_and_score(score_fn: ScoreFn, users: np.ndarray, n_items: int, target: tuple, exclude: tuple | None,
                   metric_names: list[str], *, device="cpu", batch_users: int | None = None,
                   keep_topk: bool = False, self_info: np.ndarray | None = None,
                   groups: dict[str, np.ndarray] | None = None, lay=None, count_items: bool = True):
    """Core loop. ``target``/``exclude`` are CSR (indptr, indices) over all users.

    Metric names may carry an item group (``'recall@20/tail'``, masks in ``groups``): the
    metric is computed on the hits and relevant items restricted to that group; users with
    no relevant item in the group get NaN (they are left out of the mean). With
    ``self_info`` (-log2 popularity share per item), the per-user beyond-accuracy metrics
    (novelty) are computed at the ranking depth too.

    Returns per-user metric values (float64 numpy), the top-k lists if asked, the
    recommendation counts per item (for coverage/Gini) and the ranking depth.
    """
    import torch

    plan = _plan(metric_names, groups, n_items)
    dev = torch.device(device)
    info = None if self_info is None else torch.as_tensor(self_info, dtype=torch.float64, device=dev)
    beyond = [f"{n}@{plan.maxk}" for n, m in M.BUILTIN.items() if m.kind == "beyond-accuracy" and m.per_user]
    beyond = beyond if info is not None else []
    out: dict[str, list] = {n: [] for n in plan.names + beyond}
    masks = {g: torch.as_tensor(groups[g], dtype=torch.bool, device=dev) for g in plan.by_group}
    group_rel = {g: K.targets_in(target, users, groups[g], dev) for g in plan.by_group}
    rec_counts = torch.zeros(n_items, dtype=torch.int64, device=dev)
    tops = []
    with torch.no_grad(), K.threads_for(len(users) * n_items, dev):  # scoring, masking, top-k, hits: kernels
        for rb in K.iter_ranked(score_fn, users, n_items, target, exclude, plan.maxk, device=dev,
                                batch_users=batch_users, lay=lay):
            values = M.compute(plan.plain, rb.hits, rb.n_rel)
            for g, bases in plan.by_group.items():  # only when asked: restrict hits and relevant items to g
                g_rel = group_rel[g][rb.start:rb.start + len(rb.top)]
                g_hits = rb.hits * masks[g][rb.top].to(torch.float64)
                for n, v in M.compute(bases, g_hits, g_rel).items():
                    values[f"{n}/{g}"] = torch.where(g_rel > 0, v, torch.full_like(v, float("nan")))
            values.update(M.compute(beyond, rb.hits, rb.n_rel, top=rb.top, self_info=info))
            for n, v in values.items():
                out[n].append(v)
            if count_items:
                _count(rec_counts, rb.top)
            if keep_topk:
                tops.append(rb.top.to(torch.int32))
    per_user = {n: torch.cat(v).cpu().numpy() if v else np.zeros(0) for n, v in out.items()}
    topk = torch.cat(tops).cpu().numpy() if keep_topk and tops else None
    return per_user, topk, rec_counts.cpu().numpy().astype(np.float64), plan.maxk


def _count(rec_counts, top) -> None:
    """Add the items of ``top`` to the recommendation counts: integers, the same in any order
    (CUDA's bincount would warn about determinism)."""
    import torch

    flat = top.reshape(-1)
    if rec_counts.device.type == "cpu":
        rec_counts += torch.bincount(flat, minlength=len(rec_counts))
    else:
        rec_counts.index_add_(0, flat, torch.ones(flat.numel(), dtype=torch.int64, device=rec_counts.device))


def _pairs(dataset, split: str, mask_valid_at_test: bool) -> tuple[tuple, tuple]:
    """Target and masked pairs (CSR) of ``split``: valid masks train; test masks train (+ valid)."""
    if split == "valid" or not mask_valid_at_test:
        return dataset.csr(split), dataset.csr("train")
    return dataset.csr(split), dataset.csr("train", "valid")


def _cached_layout(dataset, split: str, mask_valid_at_test: bool, users, target, exclude, dev):
    """The device layout of ``split``, kept on the dataset object (one at a time: valid during
    training, then test): validation runs every epoch."""
    key = (split, split == "test" and mask_valid_at_test, str(dev))
    layouts = dataset.__dict__.setdefault("_eval_layouts", {})
    if key not in layouts:
        layouts.clear()
        layouts[key] = K.layout(users, dataset.n_items, target, exclude, dev)
    return layouts[key]


def _popularity_inputs(dataset, metric_names: list[str], beyond_accuracy: bool):
    """Item-group masks for the group metrics asked and the self-information of each item
    (for novelty), both from the training lists; kept on the dataset object (validation runs
    every epoch)."""
    wanted = tuple(sorted({g for g in (M.split_group(n)[1] for n in metric_names) if g is not None}))
    if not (wanted or beyond_accuracy):
        return None, None
    kept = dataset.__dict__.setdefault("_eval_popularity", {})
    if (wanted, beyond_accuracy) not in kept:
        train_ptr, train_items = dataset.csr("train")
        train_pop = np.bincount(train_items, minlength=dataset.n_items)
        info = None
        if beyond_accuracy:
            n_train_users = max(1, int(np.count_nonzero(np.diff(train_ptr))))
            info = -np.log2(np.maximum(train_pop.astype(np.float64), 1.0) / n_train_users)
        kept[(wanted, beyond_accuracy)] = (item_groups(train_pop, wanted) if wanted else None, info)
    return kept[(wanted, beyond_accuracy)]


def _means(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean over users; a group metric's mean is over the users with a relevant item in the group."""
    metrics = {n: float(np.mean(v)) if len(v) else 0.0 for n, v in per_user.items() if "/" not in n}
    for n, v in per_user.items():
        if "/" in n and np.isfinite(v).any():
            metrics[n] = float(np.nanmean(v))
    return metrics


def evaluate_ranking(score_fn: ScoreFn, dataset, split: str, metric_names: list[str], *, mask_valid_at_test=True,
                     device="cpu", batch_users=None, keep_topk=False, beyond_accuracy=True) -> EvalResult:
    """Evaluate ``split`` ('valid' or 'test') of a PreparedDataset by full ranking.

    Beyond accuracy (``beyond_accuracy``): the built-in beyond-accuracy metrics at the
    ranking depth k (coverage@k and Gini@k of the top-k lists, novelty@k: mean
    self-information of recommended items). Names like ``'recall@20/cold'`` or
    ``'ndcg@10/tail'`` restrict a metric to an item group (:func:`item_groups`) in the same pass.
    """
    import torch

    t0 = time.perf_counter()
    target, exclude = _pairs(dataset, split, mask_valid_at_test)
    users = np.flatnonzero(np.diff(target[0]) > 0)
    dev = torch.device(device)
    lay = _cached_layout(dataset, split, mask_valid_at_test, users, target, exclude, dev)
    groups, info = _popularity_inputs(dataset, metric_names, beyond_accuracy)
    per_user, topk, rec_counts, maxk = rank_and_score(
        score_fn, users, dataset.n_items, target, exclude, metric_names, device=device,
        batch_users=batch_users, keep_topk=keep_topk, self_info=info, groups=groups, lay=lay,
        count_items=beyond_accuracy)
    metrics = _means(per_user)
    aggregate = {f"{n}@{maxk}": m.fn(rec_counts) for n, m in M.BUILTIN.items()
                 if beyond_accuracy and m.kind == "beyond-accuracy" and not m.per_user}
    metrics.update(aggregate)
    return EvalResult(split, metrics, per_user, users, time.perf_counter() - t0, topk, aggregate)


def evaluate_rating(predict_fn, dataset, split: str, *, device="cpu", batch=1 << 16) -> EvalResult:
    """The rating metrics (RMSE, MAE) over the (user, item, rating) pairs of ``split``, and
    per user."""
    import torch

    t0 = time.perf_counter()
    u, i, r = dataset.pairs(split)
    preds = []
    with torch.no_grad():
        for s in range(0, len(u), batch):
            ub = torch.as_tensor(u[s:s + batch], device=device)
            ib = torch.as_tensor(i[s:s + batch], device=device)
            p = predict_fn(ub, ib)
            if p.shape != ub.shape:
                raise TrainingError(f"predict() returned shape {tuple(p.shape)}, expected {tuple(ub.shape)}")
            preds.append(p.detach().double().cpu())
    pred = torch.cat(preds).numpy() if preds else np.zeros(0)
    if not np.isfinite(pred).all():
        raise TrainingError("predict() returned NaN/inf", hint="the model diverged; lower the learning rate")
    err = pred - r.astype(np.float64)
    users = np.unique(u)
    user_of = np.searchsorted(users, u)
    n_per_user = np.bincount(user_of, minlength=len(users))
    metrics, per_user = {}, {}
    for name, m in M.BUILTIN.items():
        if m.kind == "rating":
            metrics[name], per_user[name] = m.fn(err, user_of, n_per_user)
    return EvalResult(split, metrics, per_user, users, time.perf_counter() - t0)
