"""Graph building blocks: sparse propagation, user-item and kNN item-item graphs, and
cached propagated embeddings (what LightGCN, FREEDOM and BM3 are made of).

Everything stays sparse: the user-item graph is a symmetric-normalised torch sparse CSR
matrix, item-item kNN graphs are built ``chunk`` rows at a time (never an n_items x
n_items dense similarity matrix), and propagation is a sparse x dense product whose
backward pass uses the stored transpose (contiguous gradients, no per-step transposes).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .torch_base import ParameterCache


class SparseOp:
    """A fixed sparse matrix ``A`` (CSR) usable as ``A @ X`` inside autograd.

    The transpose is kept (or shared when ``A`` is symmetric) so that the backward pass is
    one more sparse product: d(A X)/dX applied to G is A^T G.
    """

    def __init__(self, indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int], *,
                 symmetric: bool = False):
        coo = torch.sparse_coo_tensor(indices, values, shape, check_invariants=False).coalesce()
        self.shape = tuple(shape)
        self.symmetric = symmetric
        with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul is all we use
            warnings.simplefilter("ignore", UserWarning)
            self.A = coo.to_sparse_csr()
            self.AT = self.A if symmetric else coo.t().coalesce().to_sparse_csr()

    @property
    def device(self) -> torch.device:
        return self.A.device

    def to(self, device) -> "SparseOp":
        out = object.__new__(SparseOp)
        out.shape, out.symmetric = self.shape, self.symmetric
        out.A = self.A.to(device)
        out.AT = out.A if self.symmetric else self.AT.to(device)
        return out

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return _SparseMM.apply(self.A, self.AT, x)

    def to_dense(self) -> torch.Tensor:
        return self.A.to_dense()

    @property
    def nnz(self) -> int:
        return int(self.A.values().numel())


class _SparseMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, AT, x):
        ctx.AT = AT
        return A @ x.contiguous()

    @staticmethod
    def backward(ctx, grad):
        # sum().backward() hands an expanded (stride-0) gradient: sparse kernels crawl on it
        return None, None, ctx.AT @ grad.contiguous()


# -- user-item graph ---------------------------------------------------------------------
def unique_edges(user: np.ndarray | torch.Tensor, item: np.ndarray | torch.Tensor, n_items: int,
                 device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct (user, item) pairs (repeated interactions become one edge), sorted."""
    u = torch.as_tensor(np.asarray(user) if not torch.is_tensor(user) else user, dtype=torch.long, device=device)
    i = torch.as_tensor(np.asarray(item) if not torch.is_tensor(item) else item, dtype=torch.long, device=device)
    key = torch.unique(u * n_items + i)
    return key // n_items, key % n_items


def edge_norm(rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
    """1 / sqrt(deg(row) * deg(col)) for each edge of a bipartite graph (degrees from the edges)."""
    d_r = torch.bincount(rows, minlength=n_rows).to(torch.float32)
    d_c = torch.bincount(cols, minlength=n_cols).to(torch.float32)
    return (d_r[rows] * d_c[cols]).clamp_min(1.0).rsqrt()


def bipartite_adjacency(user: torch.Tensor, item: torch.Tensor, n_users: int, n_items: int) -> SparseOp:
    """D^-1/2 [[0, R], [R^T, 0]] D^-1/2 over ``n_users + n_items`` nodes (users first).

    ``user``/``item`` are distinct edges (see :func:`unique_edges`); isolated nodes get an
    all-zero row, so their propagated embedding is zero (never NaN).
    """
    val = edge_norm(user, item, n_users, n_items)
    rows = torch.cat([user, item + n_users])
    cols = torch.cat([item + n_users, user])
    n = n_users + n_items
    return SparseOp(torch.stack([rows, cols]), torch.cat([val, val]), (n, n), symmetric=True)


def degree_sensitive_sample(user: torch.Tensor, item: torch.Tensor, n_users: int, n_items: int,
                            keep: float, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``round(keep * n_edges)`` edges drawn without replacement with probability
    proportional to 1/sqrt(d_u d_i) (FREEDOM's degree-sensitive pruning: edges between
    high-degree nodes, the likelier noise, are dropped more often).

    Gumbel top-k (equivalent to sequential sampling without replacement) so that it also
    works past torch.multinomial's 2^24-category limit.
    """
    n = user.numel()
    m = max(1, int(round(keep * n)))
    if m >= n:
        return torch.arange(n, device=user.device)
    w = edge_norm(user, item, n_users, n_items)
    u = torch.rand(n, generator=generator).to(user.device).clamp_(1e-12, 1.0)
    keys = w.log() - torch.log(-torch.log(u))
    return torch.topk(keys, m, sorted=False).indices


# -- item-item kNN graphs ------------------------------------------------------------------
def knn_indices(x: torch.Tensor, mask: torch.Tensor | None, k: int, *, chunk: int | None = None,
                budget: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges (row, col) linking each present row to its ``k`` most cosine-similar present rows
    (itself included, as FREEDOM/LATTICE do). Missing rows get no edges and are nobody's
    neighbour. Similarities are computed ``chunk`` rows at a time: memory is chunk x n,
    at most ``budget`` floats when ``chunk`` is not given."""
    n = x.shape[0]
    present = torch.ones(n, dtype=torch.bool, device=x.device) if mask is None else mask.to(x.device).bool()
    idx = torch.nonzero(present).flatten()
    if idx.numel() == 0 or k <= 0:
        empty = torch.empty(0, dtype=torch.long, device=x.device)
        return empty, empty
    xs = torch.nn.functional.normalize(x[idx].float(), dim=1)
    m = xs.shape[0]
    kk = min(k, m)
    step = chunk or max(1, budget // m)
    rows, cols = [], []
    for s in range(0, m, step):
        sim = xs[s:s + step] @ xs.T
        top = torch.topk(sim, kk, dim=1).indices
        rows.append(torch.arange(s, s + sim.shape[0], device=x.device).repeat_interleave(kk))
        cols.append(top.flatten())
    return idx[torch.cat(rows)], idx[torch.cat(cols)]


def sym_normalized(rows: torch.Tensor, cols: torch.Tensor, n: int, values: torch.Tensor | None = None):
    """Values of D^-1/2 A D^-1/2 for a square graph, with D the row sums (zero rows stay zero)."""
    v = torch.ones(rows.numel(), device=rows.device) if values is None else values
    deg = torch.zeros(n, device=rows.device).index_add_(0, rows, v)
    inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
    return inv[rows] * v * inv[cols]


def knn_graph(x: torch.Tensor, mask: torch.Tensor | None, k: int, *, chunk: int | None = None) -> SparseOp:
    """The symmetric-normalised kNN adjacency of one modality as a :class:`SparseOp`."""
    n = x.shape[0]
    r, c = knn_indices(x, mask, k, chunk=chunk)
    return SparseOp(torch.stack([r, c]), sym_normalized(r, c, n), (n, n))


def mix_graphs(graphs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], weights: list[float],
               masks: list[torch.Tensor], n: int) -> SparseOp:
    """Weighted sum of item-item graphs given as (rows, cols, values). An item missing some
    modality has its row re-weighted over the modalities it has (its row mass stays that of
    a complete item); an item with no modality at all has an empty row."""
    present_w = torch.zeros(n, device=masks[0].device)
    for w, m in zip(weights, masks):
        present_w += w * m.float()
    scale = torch.where(present_w > 0, 1.0 / present_w.clamp_min(1e-12), torch.zeros_like(present_w))
    rows, cols, vals = [], [], []
    for (r, c, v), w in zip(graphs, weights):
        rows.append(r)
        cols.append(c)
        vals.append(w * v * scale[r])
    return SparseOp(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals), (n, n))


# -- propagation -----------------------------------------------------------------------------
def propagate(op: SparseOp, x: torch.Tensor, n_layers: int) -> list[torch.Tensor]:
    """[x, A x, A^2 x, ..., A^L x]."""
    out = [x]
    for _ in range(n_layers):
        out.append(op @ out[-1])
    return out


def layer_mean(op: SparseOp, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN's layer combination with alpha_k = 1/(L+1): the mean of the propagated layers."""
    return torch.stack(propagate(op, x, n_layers)).mean(0)


# -- cached final embeddings ------------------------------------------------------------------
class CachedEmbeddings:
    """Mixin for a :class:`~.torch_base.TorchRecommender` whose scores come from full-graph
    propagation: ``final_embeddings()`` -> (users, items) is computed once per parameter
    state (:class:`~.torch_base.ParameterCache`) and reused across score batches."""

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def fit(self, data, features=None, **kwargs):
        self.embedding_cache_ = ParameterCache()
        return super().fit(data, features, **kwargs)

    def cached(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embedding_cache_.get(self.module_, lambda: tuple(t.detach() for t in self.final_embeddings()))

    def score_module(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self.cached()
        return u[users] @ i.T
