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
-index) (:func:`_order_keys`): per row, the maxima of groups of g consecutive items
(:func:`group_size`), the best k groups by key, then the best k of their k * g items by key.
A group holding one of the k best items is always among the k best groups (each group
ranked above it holds an item ranked above that one), so this is exact. It reads the block
once (the group maxima) and orders small arrays: no slower than ``torch.topk`` on small
catalogs, about half its time on large ones, and no host sync.

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

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from ..errors import TrainingError

# One float32 score block per batch. 32 MiB keeps a block close to the CPU caches (measured
# on 2 cores at 20k-63k items: 16-64 MiB within 5%, 256 MiB 15% slower); a GPU wants big
# blocks to keep its cores busy.
CPU_BLOCK_BYTES = 32 << 20
CUDA_BLOCK_BYTES = 1 << 30
# A pass over fewer scores than this runs on one intra-op thread (:func:`threads_for`).
SMALL_PASS_SCORES = 1 << 22


def batch_users_for(n_items: int, device="cpu", budget_bytes: int | None = None) -> int:
    """Users per batch so that one float32 score block fits ``budget_bytes``."""
    if budget_bytes is None:
        budget_bytes = CUDA_BLOCK_BYTES if torch.device(device).type == "cuda" else CPU_BLOCK_BYTES
    return max(1, int(budget_bytes) // (4 * max(1, n_items)))


@contextlib.contextmanager
def threads_for(n_scores: int, device="cpu"):
    """One intra-op thread while a small pass (under :data:`SMALL_PASS_SCORES` scores) runs on
    CPU; the thread count is restored after. Each op of such a pass is too short to pay for
    waking a second thread, and on a machine shared with other work every wake-up can wait
    for a time slice (ml-100k's test pass, 943 x 1,349 scores, on 2 cores at load 3: 12 ms on
    one thread, 25-30 ms on two). ``mmbench check`` does the same for its tiny data."""
    before = torch.get_num_threads()
    if torch.device(device).type != "cpu" or n_scores >= SMALL_PASS_SCORES or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Scratch:
    """Buffers that the batches of a pass, and later passes over the same layout, reuse: a
    fresh multi-MB temporary costs about as much in page faults as the work done in it
    (measured: +40% on the exact top-k)."""

    def __init__(self):
        self._bufs: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple, dtype, device) -> torch.Tensor:
        n = int(np.prod(shape))
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or buf.device != device:
            buf = self._bufs[name] = torch.empty(max(n, 1), dtype=dtype, device=device)
        return buf[:n].view(shape)


@dataclass
class Layout:
    """The pairs of the evaluated users, on the device, in batch order.

    ``ex_flat``: masked pairs as ``position in users * n_items + item`` (so a batch starting
    at ``s`` masks ``ex_flat[ex_ptr[s]:ex_ptr[e]] - s * n_items`` of its flat block);
    ``ex_ptr`` (host) delimits each user's run.
    ``keys``: sorted ``user * n_items + item`` of the target pairs. ``n_rel``: targets per
    evaluated user (float64). ``has_candidates``: has the user an item that is not masked?
    ``scratch``: buffers the ranking of its batches reuses.
    """

    users: torch.Tensor
    keys: torch.Tensor
    n_rel: torch.Tensor
    ex_flat: torch.Tensor | None
    ex_ptr: np.ndarray | None
    has_candidates: torch.Tensor
    scratch: Scratch = field(default_factory=Scratch)


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
REV = (1 << 32) - 1  # keys hold REV - item: the lower index, the larger key
_NO_USER = (1 << 63) - 1


def group_size(n_items: int, k: int) -> int:
    """Items per group for :func:`exact_topk`. Its work per row is a max over every score plus
    ordering n_items / g group keys and k * g candidate keys; measured (one core, k = 20) it
    is 0.8-1.0x ``torch.topk`` with 8 below ~10k items and 0.5-0.8x with 32 above."""
    return 32 if n_items >= 512 * k else 8


def _order_keys(values: torch.Tensor, rev_items: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """Fill ``out`` (int64, the shape of ``values``) with keys whose descending order is the
    ranking order of ``values`` (float32): higher score first, then lower item index.
    ``rev_items`` (broadcast against ``values``) is ``REV - item``: the low 32 bits of a key.
    ``tmp``: int64 scratch of the same shape; ``values`` is changed only from -0.0 to 0.0.

    The float's bits as a signed integer order non-negative floats; for negative ones every
    bit but the sign is flipped, so the integer order is the float order (-0.0 is made 0.0
    first: equal scores must get equal high halves).
    """
    values.add_(0.0)
    out.copy_(values.view(torch.int32))  # the bits, sign-extended
    torch.bitwise_right_shift(out, 32, out=tmp)
    tmp &= 0x7FFFFFFF
    out ^= tmp
    out <<= 32
    out |= rev_items
    return out


def _group_maxima(x: torch.Tensor, g: int, out: torch.Tensor) -> torch.Tensor:
    """Per row of ``x``, the max of each group of ``g`` consecutive values (the last group may be
    short) into ``out`` (b, groups); NaN if one is NaN. A max over a contiguous run
    vectorises from 32 values on; below that max pooling is ~3x faster."""
    b, n = x.shape
    whole = n // g
    if g < 32:
        out[:, :whole] = torch.nn.functional.max_pool1d(x.unsqueeze(1), g).squeeze(1)
    else:
        torch.amax(x[:, :whole * g].view(b, whole, g), 2, out=out[:, :whole])
    if whole * g < n:
        torch.amax(x[:, whole * g:], 1, out=out[:, whole])
    return out


def exact_topk(x: torch.Tensor, k: int, scratch: Scratch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best items of each row of ``x`` (b, n) float32 without NaN, best first, equal
    scores by lower index: (item indices (b, k) int64, row maxima (b,)). See the module doc."""
    s = scratch or Scratch()
    b, n = x.shape
    dev, i64 = x.device, torch.int64
    g = min(group_size(n, k), n)
    n_groups = -(-n // g)
    gmax = _group_maxima(x, g, s.get("gmax", (b, n_groups), torch.float32, dev))
    best = gmax.amax(1)
    gkeys = _order_keys(gmax, REV - g * torch.arange(n_groups, device=dev), s.get("gkeys", gmax.shape, i64, dev),
                        s.get("gtmp", gmax.shape, i64, dev))
    first = torch.topk(gkeys, min(k, n_groups), dim=1).indices * g  # first item of each of the best groups
    shape = (b, first.shape[1] * g)
    step = torch.arange(g, device=dev)
    items = s.get("items", shape, i64, dev)
    torch.add(first.unsqueeze(2), step, out=items.view(b, -1, g))
    rev = s.get("rev", shape, i64, dev)
    torch.sub((REV - first).unsqueeze(2), step, out=rev.view(b, -1, g))
    past = torch.ge(items, n, out=s.get("past", shape, torch.bool, dev)) if n % g else None
    vals = torch.gather(x, 1, items.clamp_(max=n - 1), out=s.get("vals", shape, torch.float32, dev))
    if past is not None:  # past the last item: -inf, and ranked after every item by its index
        vals.masked_fill_(past, -torch.inf)
    keys = _order_keys(vals, rev, s.get("keys", shape, i64, dev), items)
    pick = torch.topk(keys, k, dim=1).indices
    return REV - rev.gather(1, pick), best


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
            top, best = exact_topk(scores, k, lay.scratch)
            del scores
            checks.add(nan | torch.isnan(best).any(), (best == -torch.inf) & lay.has_candidates[s:e], ub)
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
