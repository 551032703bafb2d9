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


ITEM_GROUPS = ("cold", "tail")
TAIL_HEAD_SHARE = 0.2  # the head is the top 20% of items by training popularity; the rest is the tail


def split_group(name: str) -> tuple[str, str | None]:
    """``'recall@20/tail'`` -> ``('recall@20', 'tail')``; ``'recall@20'`` -> ``('recall@20', None)``."""
    base, sep, group = name.partition("/")
    return base, (group if sep else None)


def item_groups(train_popularity: np.ndarray, names=ITEM_GROUPS) -> dict[str, np.ndarray]:
    """Boolean masks over items. ``cold``: no training interaction. ``tail``: outside the top
    20% of items by training popularity (ties broken by item index)."""
    pop = np.asarray(train_popularity)
    out = {}
    for g in names:
        if g == "cold":
            out[g] = pop == 0
        elif g == "tail":
            n_head = int(np.ceil(TAIL_HEAD_SHARE * len(pop)))
            head = np.argsort(-pop, kind="stable")[:n_head]
            mask = np.ones(len(pop), dtype=bool)
            mask[head] = False
            out[g] = mask
        else:
            raise ConfigError(f"unknown item group {g!r}", hint=f"known: {', '.join(ITEM_GROUPS)}")
    return out


def rank_and_score(score_fn: ScoreFn, users: np.ndarray, n_items: int, target: tuple, exclude: tuple | None,
                   metric_names: list[str], *, device="cpu", batch_users: int | None = None,
                   keep_topk: bool = False, novelty_pop: np.ndarray | None = None,
                   groups: dict[str, np.ndarray] | None = None, lay=None, count_items: bool = True):
    """Core loop. ``target``/``exclude`` are CSR (indptr, indices) over all users.

    Metric names may carry an item group (``'recall@20/tail'``, masks in ``groups``): the
    metric is computed on the hits and relevant items restricted to that group; users with
    no relevant item in the group get NaN (they are left out of the mean).

    Returns per-user metric tensors (float64, CPU numpy), the top-k lists if asked, and
    the recommendation counts per item (for coverage/Gini).
    """
    import torch

    plain, by_group = [], {}
    for n in metric_names:
        base, g = split_group(n)
        if g is None:
            plain.append(M.canonical(base))
        else:
            if groups is None or g not in groups:
                raise ConfigError(f"metric {n!r} needs the item group {g!r}", hint="pass groups=item_groups(...)")
            by_group.setdefault(g, []).append(M.canonical(base))
    names = plain + [f"{b}/{g}" for g, bs in by_group.items() for b in bs]
    k_of = [M.parse_metric(split_group(n)[0])[1] for n in names]
    ks = [k for k in k_of if k is not None]
    maxk = min(max(ks), n_items) if ks else min(20, n_items)
    dev = torch.device(device)
    out: dict[str, list] = {n: [] for n in names}
    tops = []
    rec_counts = torch.zeros(n_items, dtype=torch.int64, device=dev)
    info = None
    if novelty_pop is not None:
        info = torch.as_tensor(novelty_pop, dtype=torch.float64, device=dev)
        out["novelty@%d" % maxk] = []
    group_masks = {g: torch.as_tensor(groups[g], dtype=torch.bool, device=dev) for g in by_group}
    group_rel = {g: K.targets_in(target, users, groups[g], dev) for g in by_group}
    with torch.no_grad():  # scoring, masking, top-k and hits: kernels.iter_ranked
        for rb in K.iter_ranked(score_fn, users, n_items, target, exclude, maxk, device=dev,
                                batch_users=batch_users, lay=lay):
            top, hits, n_rel = rb.top, rb.hits, rb.n_rel
            for n, v in M.compute(plain, hits, n_rel).items():
                out[n].append(v)
            for g, bases in by_group.items():  # only when asked: restrict hits and relevant items to g
                gm = group_masks[g]
                g_rel = group_rel[g][rb.start:rb.start + len(top)]
                g_hits = hits * gm[top].to(torch.float64)
                for n, v in M.compute(bases, g_hits, g_rel).items():
                    out[f"{n}/{g}"].append(torch.where(g_rel > 0, v, torch.full_like(v, float("nan"))))
            if count_items:  # integer counts: the same in any order (CUDA's bincount would warn)
                if dev.type == "cpu":
                    rec_counts += torch.bincount(top.reshape(-1), minlength=n_items)
                else:
                    rec_counts.index_add_(0, top.reshape(-1), torch.ones(top.numel(), dtype=torch.int64, device=dev))
            if info is not None:
                out["novelty@%d" % maxk].append(info[top].mean(1))
            if keep_topk:
                tops.append(top.to(torch.int32))
    per_user = {n: torch.cat(v).cpu().numpy() if v else np.zeros(0) for n, v in out.items()}
    topk = torch.cat(tops).cpu().numpy() if keep_topk and tops else None
    return per_user, topk, rec_counts.cpu().numpy().astype(np.float64), maxk


def gini(counts: np.ndarray) -> float:
    """Gini index of how recommendations spread over items (0 = even, 1 = one item)."""
    x = np.sort(counts.astype(np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    idx = np.arange(1, n + 1)
    return float(((2 * idx - n - 1) * x).sum() / (n * x.sum()))


def evaluate_ranking(score_fn: ScoreFn, dataset, split: str, metric_names: list[str], *, mask_valid_at_test=True,
                     device="cpu", batch_users=None, keep_topk=False, beyond_accuracy=True) -> EvalResult:
    """Evaluate ``split`` ('valid' or 'test') of a PreparedDataset by full ranking.

    The masked and target pairs of the split, laid out for the device, are kept on the
    dataset object and reused by later passes (validation runs every epoch).

    Beyond accuracy (``beyond_accuracy``): coverage@k and Gini@k of the top-k lists,
    novelty@k (mean self-information of recommended items). Names like ``'recall@20/cold'``
    or ``'ndcg@10/tail'`` restrict a metric to cold-start or long-tail items
    (:func:`item_groups`) in the same pass.
    """
    import torch

    t0 = time.perf_counter()
    target = dataset.csr(split)
    if split == "valid":
        exclude = dataset.csr("train")
    elif mask_valid_at_test:
        exclude = dataset.csr("train", "valid")
    else:
        exclude = dataset.csr("train")
    users = np.flatnonzero(np.diff(target[0]) > 0)
    dev = torch.device(device)
    key = (split, split == "test" and mask_valid_at_test, str(dev))
    layouts = dataset.__dict__.setdefault("_eval_layouts", {})
    if key not in layouts:
        layouts.clear()  # one layout at a time: valid during training, then test
        layouts[key] = K.layout(users, dataset.n_items, target, exclude, dev)
    pop = groups = None
    wanted = sorted({g for g in (split_group(n)[1] for n in metric_names) if g is not None})
    if wanted or beyond_accuracy:  # from the (cached) training lists: no pass over the raw pairs
        train_ptr, train_items = dataset.csr("train")
        train_pop = np.bincount(train_items, minlength=dataset.n_items)
        if wanted:
            groups = item_groups(train_pop, wanted)
        if beyond_accuracy:
            n_train_users = max(1, int(np.count_nonzero(np.diff(train_ptr))))
            pop = -np.log2(np.maximum(train_pop.astype(np.float64), 1.0) / n_train_users)  # self-information
    per_user, topk, rec_counts, maxk = rank_and_score(
        score_fn, users, dataset.n_items, target, exclude, metric_names, device=device,
        batch_users=batch_users, keep_topk=keep_topk, novelty_pop=pop, groups=groups, lay=layouts[key],
        count_items=beyond_accuracy)
    metrics = {n: float(np.mean(v)) if len(v) else 0.0 for n, v in per_user.items() if "/" not in n}
    for n, v in per_user.items():  # group metrics: mean over users with a relevant item in the group
        if "/" in n and np.isfinite(v).any():
            metrics[n] = float(np.nanmean(v))
    aggregate = {}
    if beyond_accuracy:
        aggregate[f"coverage@{maxk}"] = float((rec_counts > 0).mean())
        aggregate[f"gini@{maxk}"] = gini(rec_counts)
    metrics.update(aggregate)
    return EvalResult(split, metrics, per_user, users, time.perf_counter() - t0, topk, aggregate)


def evaluate_rating(predict_fn, dataset, split: str, *, device="cpu", batch=1 << 16) -> EvalResult:
    """RMSE and MAE over the (user, item, rating) pairs of ``split``; per-user vectors too."""
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
    inv = np.searchsorted(users, u)
    cnt = np.bincount(inv, minlength=len(users))
    se = np.bincount(inv, weights=err ** 2, minlength=len(users)) / cnt
    ae = np.bincount(inv, weights=np.abs(err), minlength=len(users)) / cnt
    metrics = {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}
    return EvalResult(split, metrics, {"rmse": np.sqrt(se), "mae": ae}, users, time.perf_counter() - t0)
