"""The inner loop of full-ranking evaluation, written for large catalogs.

Per batch of users: the model's score block (b x n_items, float32) -> -inf at the masked
items (one ``index_fill_`` on the flat block) -> the exact top-k (:func:`exact_topk`) ->
hits of the top-k found by binary search in the sorted target keys ``user * n_items + item``.
Nothing else touches the whole block: no dense b x n_items target matrix. The masked and
target pairs of the evaluated users are laid out once, so a batch only slices them with
host integers and the loop never waits on the device (on CUDA, bad scores are reported
after the last batch). Memory is one score block plus O(nnz): never n_users x n_items.

The ranking order is exact and the same on every device: higher score first, equal scores
by lower item index (the item's row in the split's id map). ``torch.topk`` leaves the order
of equal scores to the backend, so the top-k is taken on int64 keys that encode (score,
-index): per row, the maxima of groups of consecutive items (:func:`group_size`), the best k groups
by key, then the best k of their items by key. A group holding one of the k best items is
always among the k best groups (each better group holds a better item), so this is exact;
it reads the block once (the group maxima) and orders small arrays, which is cheaper than
``topk`` on the whole block at any catalog size.

What scores may be (checked per batch, on CUDA after the last batch):

- floating point of any width, or integers/bool: compared as float32 (float64 and large
  integers are rounded to float32; values that round to the same float32 tie);
- +inf and -inf are scores like any other (masked items get -inf), equal ones ordered by
  index; -0.0 equals 0.0;
- errors (:class:`TrainingError`, one line): a wrong shape, complex scores, NaN anywhere
  (masked items included), and a user whose every candidate item scores -inf (the model
  ranks nothing for that user and the masked items would fill its list).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from ..errors import TrainingError

# One float32 score block per batch. 32 MiB keeps a block close to the CPU caches (measured
# on 2 cores at 20k-63k items: 16-64 MiB within 5%, 256 MiB 15% slower); a GPU wants big
# blocks to keep its cores busy.
CPU_BLOCK_BYTES = 32 << 20
CUDA_BLOCK_BYTES = 1 << 30


def batch_users_for(n_items: int, device="cpu", budget_bytes: int | None = None) -> int:
    """Users per batch so that one float32 score block fits ``budget_bytes``."""
    if budget_bytes is None:
        budget_bytes = CUDA_BLOCK_BYTES if torch.device(device).type == "cuda" else CPU_BLOCK_BYTES
    return max(1, int(budget_bytes) // (4 * max(1, n_items)))


@dataclass
class Layout:
    """The pairs of the evaluated users, on the device, in batch order.

    ``ex_flat``: masked pairs as ``position in users * n_items + item`` (so a batch starting
    at ``s`` masks ``ex_flat[ex_ptr[s]:ex_ptr[e]] - s * n_items`` of its flat block);
    ``ex_ptr`` (host) delimits each user's run.
    ``keys``: sorted ``user * n_items + item`` of the target pairs. ``n_rel``: targets per
    evaluated user (float64). ``open_``: does the user have an item that is not masked?
    """

    users: torch.Tensor
    keys: torch.Tensor
    n_rel: torch.Tensor
    ex_flat: torch.Tensor | None
    ex_ptr: np.ndarray | None
    open_: torch.Tensor


def _rows_of(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray):
    """Positions (into ``users``) and items of the CSR rows of ``users``, with their offsets."""
    indptr = np.asarray(indptr, dtype=np.int64)
    starts, ends = indptr[users], indptr[users + 1]
    counts = ends - starts
    ptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    pos = np.repeat(np.arange(len(users), dtype=np.int64), counts)
    take = np.arange(ptr[-1], dtype=np.int64) - np.repeat(ptr[:-1] - starts, counts)
    return pos, np.asarray(indices, dtype=np.int64)[take], ptr


def layout(users: np.ndarray, n_items: int, target: tuple, exclude: tuple | None, device="cpu") -> Layout:
    users = np.asarray(users, dtype=np.int64)
    dev = torch.device(device)
    pos, items, tptr = _rows_of(target[0], target[1], users)
    keys = users[pos] * np.int64(n_items) + items
    if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():  # sorted already when users are
        keys = np.sort(keys)
    n_rel = np.diff(tptr).astype(np.float64)
    ex_flat = ex_ptr = None
    masked = np.zeros(len(users), dtype=np.int64)
    if exclude is not None:
        erows, ecols, ex_ptr = _rows_of(exclude[0], exclude[1], users)
        flat = erows * np.int64(n_items) + ecols
        masked = np.bincount(erows[np.unique(flat, return_index=True)[1]], minlength=len(users))
        ex_flat = torch.as_tensor(flat, device=dev)
    return Layout(torch.as_tensor(users, device=dev), torch.as_tensor(keys, device=dev),
                  torch.as_tensor(n_rel, device=dev), ex_flat, ex_ptr, torch.as_tensor(masked < n_items, device=dev))


def topk_hits(top: torch.Tensor, users: torch.Tensor, keys: torch.Tensor, n_items: int) -> torch.Tensor:
    """Bool (b, k): is item ``top[r, j]`` a target of ``users[r]``? (binary search in ``keys``)."""
    if keys.numel() == 0:
        return torch.zeros(top.shape, dtype=torch.bool, device=top.device)
    q = users[:, None] * n_items + top
    at = torch.searchsorted(keys, q).clamp_(max=keys.numel() - 1)
    return keys[at] == q


# -- the exact top-k ---------------------------------------------------------------------------
_LOW = (1 << 32) - 1
_NONE = -(1 << 63)  # a key below every score's key: candidates past the last item
_NO_USER = (1 << 63) - 1


def group_size(n_items: int, k: int) -> int:
    """Items per group for :func:`exact_topk`: the size that minimises the estimated work per
    row, n_items * (max per item) + (n_items / g + k * g) * (ordering per key). Measured on
    2 cores: the max over 32 or 64 consecutive floats vectorises (~0.3 ns per score), over 8
    it does not (~2 ns); ordering a small array costs ~10 ns per key."""
    return min((8, 32, 64), key=lambda g: n_items * (2.0 if g == 8 else 0.3) + 10.0 * (n_items / g + k * g))


def order_keys(values: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """int64 keys whose descending order is the ranking order of ``values`` (float32): higher
    score first, then lower item index (``items``, broadcast against ``values``, < 2**32).

    The float's bits as a signed integer order non-negative floats; for negative ones every
    bit but the sign is flipped, so the integer order is the float order (-0.0 is made 0.0
    first: equal scores must get equal high halves). The low 32 bits hold ``2**32 - 1 - item``.
    """
    bits = (values + 0.0).view(torch.int32)
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (ordered.to(torch.int64) << 32) | (_LOW - items)


def exact_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best items of each row of ``x`` (b, n) float32 without NaN, best first, equal
    scores by lower index: (item indices (b, k) int64, row maxima (b,)). See the module doc."""
    b, n = x.shape
    dev = x.device
    g = group_size(n, k)
    whole = n // g * g
    gmax = x[:, :whole].view(b, n // g, g).amax(2)
    if whole < n:
        gmax = torch.cat([gmax, x[:, whole:].amax(1, keepdim=True)], 1)
    n_groups = gmax.shape[1]
    groups = torch.topk(order_keys(gmax, torch.arange(n_groups, device=dev)), min(k, n_groups), dim=1).indices
    cand = (groups.unsqueeze(2) * g + torch.arange(g, device=dev)).view(b, -1)
    past_end = cand >= n
    keys = order_keys(x.gather(1, cand.clamp(max=n - 1)), cand).masked_fill_(past_end, _NONE)
    pick = torch.topk(keys, k, dim=1).indices
    return cand.gather(1, pick), gmax.amax(1)


@dataclass
class Ranked:
    """One batch: ``start`` (offset in the evaluated users), its ``users``, ``top`` (b, k)
    item ids best first, ``hits`` (b, k) float64 and ``n_rel`` (b,) float64."""

    start: int
    users: torch.Tensor
    top: torch.Tensor
    hits: torch.Tensor
    n_rel: torch.Tensor


def _defer_checks(dev: torch.device) -> bool:
    """A host-side check is free on CPU; on an accelerator it would stall the stream, so bad
    scores are collected on the device and reported after the last batch."""
    return dev.type != "cpu"


class _Checks:
    """Bad scores seen so far, kept on the device: any NaN, and the first user (internal
    index) whose every candidate scores -inf. ``raise_if_bad`` reads them (one host sync)."""

    def __init__(self, dev):
        self.nan = torch.zeros((), dtype=torch.bool, device=dev)
        self.dead = torch.full((), _NO_USER, dtype=torch.int64, device=dev)

    def add(self, nan: torch.Tensor, dead_rows: torch.Tensor, users: torch.Tensor) -> None:
        self.nan |= nan
        self.dead = torch.minimum(self.dead, torch.where(dead_rows, users, _NO_USER).amin())

    def raise_if_bad(self) -> None:
        if bool(self.nan):
            raise TrainingError("score() returned NaN", hint="the model diverged; lower the learning rate")
        if int(self.dead) != _NO_USER:
            raise TrainingError(f"score() gave every candidate item of user {int(self.dead)} (internal index) -inf",
                                hint="a model must rank at least one item per user above -inf")


def _score_block(score_fn, ub: torch.Tensor, n_items: int, dev) -> torch.Tensor:
    """The model's scores for users ``ub`` as a float32 block of our own (checked shape and dtype)."""
    scores = score_fn(ub)
    if tuple(scores.shape) != (len(ub), n_items):
        raise TrainingError(f"score() returned shape {tuple(scores.shape)}, expected ({len(ub)}, {n_items})")
    if scores.is_complex():
        raise TrainingError(f"score() returned complex scores ({scores.dtype})", hint="return real scores")
    scores = scores.to(device=dev, dtype=torch.float32)
    if scores._base is not None or not scores.is_contiguous():
        scores = scores.contiguous().clone()  # never write into a model's own tensor
    return scores


def iter_ranked(score_fn: Callable[[torch.Tensor], torch.Tensor], users: np.ndarray, n_items: int, target: tuple,
                exclude: tuple | None, k: int, *, device="cpu", batch_users: int | None = None,
                lay: Layout | None = None) -> Iterator[Ranked]:
    """Rank every item for each user of ``users`` (batched) and yield the top-``k`` with hits.

    ``target``/``exclude``: CSR (indptr, indices) over all users; ``exclude`` items get
    -inf. ``lay``: their :func:`layout` for these users, when the caller keeps one. Raises
    TrainingError on bad scores (see the module doc).
    """
    dev = torch.device(device)
    if lay is None:
        lay = layout(users, n_items, target, exclude, dev)
    bsz = batch_users or batch_users_for(n_items, dev)
    check_now = not _defer_checks(dev)
    checks = _Checks(dev)
    with torch.no_grad():
        for s in range(0, len(lay.users), bsz):
            e = min(s + bsz, len(lay.users))
            ub = lay.users[s:e]
            scores = _score_block(score_fn, ub, n_items, dev)
            nan = torch.zeros((), dtype=torch.bool, device=dev)
            if lay.ex_flat is not None and lay.ex_ptr[e] > lay.ex_ptr[s]:
                flat = scores.view(-1)  # 1-D take/fill: cheaper than 2-D advanced indexing
                at = lay.ex_flat[int(lay.ex_ptr[s]):int(lay.ex_ptr[e])] - s * n_items
                nan = torch.isnan(flat.take(at)).any()
                flat.index_fill_(0, at, -torch.inf)
            top, best = exact_topk(scores, k)
            del scores
            checks.add(nan | torch.isnan(best).any(), (best == -torch.inf) & lay.open_[s:e], ub)
            if check_now:
                checks.raise_if_bad()
            hits = topk_hits(top, ub, lay.keys, n_items).to(torch.float64)
            yield Ranked(s, ub, top, hits, lay.n_rel[s:e])
    checks.raise_if_bad()


def reference_ranked(score_fn, users: np.ndarray, n_items: int, target: tuple, exclude: tuple | None, k: int):
    """The straightforward computation in NumPy, independent of the kernel (tests and
    benchmarks): the whole score matrix, masked items -inf, each row sorted by (score
    descending, item index ascending) with ``np.lexsort``. Returns (top (n, k) int64, hits
    (n, k) float64, n_rel (n,) float64)."""
    users = np.asarray(users, dtype=np.int64)
    with torch.no_grad():
        scores = np.array(score_fn(torch.as_tensor(users)).to(torch.float32).cpu().numpy(), dtype=np.float32)
    tgt = np.zeros(scores.shape, dtype=bool)
    for r, u in enumerate(users):
        tgt[r, target[1][target[0][u]:target[0][u + 1]]] = True
        if exclude is not None:
            scores[r, exclude[1][exclude[0][u]:exclude[0][u + 1]]] = -np.inf
    index = np.broadcast_to(np.arange(n_items), scores.shape)
    top = np.lexsort((index, -scores), axis=1)[:, :k]
    return top, np.take_along_axis(tgt, top, 1).astype(np.float64), tgt.sum(1).astype(np.float64)


def targets_in(target: tuple, users: np.ndarray, item_mask: np.ndarray, device="cpu") -> torch.Tensor:
    """Per evaluated user (float64): how many of its target items ``item_mask`` selects."""
    users = np.asarray(users, dtype=np.int64)
    pos, items, _ = _rows_of(target[0], target[1], users)
    counts = np.bincount(pos[np.asarray(item_mask, dtype=bool)[items]], minlength=len(users))
    return torch.as_tensor(counts.astype(np.float64), device=torch.device(device))
