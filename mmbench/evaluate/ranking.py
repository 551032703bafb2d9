"""Full ranking on the device: batches of users, mask seen items, top-k, metrics on tensors.

Never sampled: every item is a candidate except those the protocol masks. Memory is
bounded by one (batch x n_items) score block; no n_users x n_items matrix is built.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import TrainingError
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


def _expand(indptr, indices, rows):
    """Row ids (0..b-1 within the batch) and column ids of the CSR rows ``rows``, on device."""
    import torch

    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    b = len(rows)
    row_ids = torch.repeat_interleave(torch.arange(b, device=rows.device), counts)
    total = row_ids.numel()
    first = torch.cumsum(counts, 0) - counts
    offs = torch.arange(total, device=rows.device) - torch.repeat_interleave(first, counts)
    cols = indices[torch.repeat_interleave(starts, counts) + offs]
    return row_ids, cols, counts


def rank_and_score(score_fn: ScoreFn, users: np.ndarray, n_items: int, target: tuple, exclude: tuple | None,
                   metric_names: list[str], *, device="cpu", batch_users: int | None = None,
                   keep_topk: bool = False, novelty_pop: np.ndarray | None = None):
    """Core loop. ``target``/``exclude`` are CSR (indptr, indices) over all users.

    Returns per-user metric tensors (float64, CPU numpy), the top-k lists if asked, and
    the recommendation counts per item (for coverage/Gini).
    """
    import torch

    names = [M.canonical(n) for n in metric_names]
    ks = [M.parse_metric(n)[1] for n in names if M.parse_metric(n)[1] is not None]
    maxk = min(max(ks), n_items) if ks else min(20, n_items)
    dev = torch.device(device)
    t_ptr = torch.as_tensor(target[0], device=dev)
    t_idx = torch.as_tensor(target[1], device=dev)
    if exclude is not None:
        e_ptr = torch.as_tensor(exclude[0], device=dev)
        e_idx = torch.as_tensor(exclude[1], device=dev)
    users_t = torch.as_tensor(users, dtype=torch.long, device=dev)
    bsz = batch_users or default_batch_users(n_items)
    out: dict[str, list] = {n: [] for n in names}
    tops = []
    rec_counts = torch.zeros(n_items, dtype=torch.float64, device=dev)
    info = None
    if novelty_pop is not None:
        info = torch.as_tensor(novelty_pop, dtype=torch.float64, device=dev)
        out["novelty@%d" % maxk] = []
    with torch.no_grad():
        for s in range(0, len(users_t), bsz):
            ub = users_t[s:s + bsz]
            scores = score_fn(ub)
            if scores.shape != (len(ub), n_items):
                raise TrainingError(f"score() returned shape {tuple(scores.shape)}, expected ({len(ub)}, {n_items})")
            scores = scores.to(device=dev, dtype=torch.float32)
            if scores._base is not None or not scores.is_contiguous():
                scores = scores.contiguous().clone()  # never write into a model's own tensor
            if torch.isnan(scores).any():
                raise TrainingError("score() returned NaN", hint="the model diverged; lower the learning rate")
            if exclude is not None:
                r, c, _ = _expand(e_ptr, e_idx, ub)
                if r.numel():
                    scores[r, c] = -torch.inf
            top = torch.topk(scores, maxk, dim=1, sorted=True).indices
            r, c, counts = _expand(t_ptr, t_idx, ub)
            tgt = torch.zeros((len(ub), n_items), dtype=torch.bool, device=dev)
            tgt[r, c] = True
            hits = tgt.gather(1, top).to(torch.float64)
            n_rel = counts.to(torch.float64)
            for n, v in M.compute(names, hits, n_rel).items():
                out[n].append(v)
            rec_counts.index_add_(0, top.reshape(-1), torch.ones(top.numel(), dtype=torch.float64, device=dev))
            if info is not None:
                out["novelty@%d" % maxk].append(info[top].mean(1))
            if keep_topk:
                tops.append(top.to(torch.int32))
    per_user = {n: torch.cat(v).cpu().numpy() if v else np.zeros(0) for n, v in out.items()}
    topk = torch.cat(tops).cpu().numpy() if keep_topk and tops else None
    return per_user, topk, rec_counts.cpu().numpy(), maxk


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
    """Evaluate ``split`` ('valid' or 'test') of a PreparedDataset by full ranking."""
    t0 = time.perf_counter()
    target = dataset.csr(split)
    if split == "valid":
        exclude = dataset.csr("train")
    elif mask_valid_at_test:
        exclude = dataset.csr("train", "valid")
    else:
        exclude = dataset.csr("train")
    users = np.flatnonzero(np.diff(target[0]) > 0)
    pop = None
    if beyond_accuracy:
        train_pop = np.bincount(dataset.pairs("train")[1], minlength=dataset.n_items).astype(np.float64)
        n_train_users = max(1, len(np.unique(dataset.pairs("train")[0])))
        pop = -np.log2(np.maximum(train_pop, 1.0) / n_train_users)  # self-information
    per_user, topk, rec_counts, maxk = rank_and_score(
        score_fn, users, dataset.n_items, target, exclude, metric_names, device=device,
        batch_users=batch_users, keep_topk=keep_topk, novelty_pop=pop)
    metrics = {n: float(np.mean(v)) if len(v) else 0.0 for n, v in per_user.items()}
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
