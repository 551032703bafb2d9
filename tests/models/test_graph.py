"""Graph building blocks: kNN item graphs, sparse propagation and its gradient, degree-sensitive pruning."""
import torch

from mmbench.models import graph as G


# -- graph helpers --------------------------------------------------------------------------
def test_knn_graph_equals_dense_topk_of_cosine_in_chunks():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 8, generator=g)
    k = 5
    r, c = G.knn_indices(x, None, k, chunk=4)  # 10 chunks, the last one partial
    xn = x / x.norm(dim=1, keepdim=True)
    want = torch.topk(xn @ xn.T, k, dim=1).indices
    got = torch.full((37, k), -1)
    for row in range(37):
        got[row] = torch.sort(c[r == row]).values
    assert torch.equal(got, torch.sort(want, dim=1).values)
    assert torch.equal(want[:, 0], torch.arange(37))  # itself first (cosine 1), as FREEDOM does
    # symmetric normalisation by row sums: every row has k edges -> every value 1/k
    op = G.knn_graph(x, None, k, chunk=4)
    dense = torch.zeros(37, 37)
    dense[r, c] = 1.0
    d = dense.sum(1).rsqrt()
    assert torch.allclose(op.to_dense(), d[:, None] * dense * d[None, :])
    assert torch.allclose(op.to_dense().sum(1), torch.ones(37))


def test_knn_graph_leaves_missing_rows_out():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 6, generator=g)
    mask = torch.ones(20, dtype=torch.bool)
    mask[[2, 7, 11]] = False
    r, c = G.knn_indices(x, mask, 4, chunk=3)
    assert not set(r.tolist()) & {2, 7, 11} and not set(c.tolist()) & {2, 7, 11}
    keep = torch.nonzero(mask).flatten()
    xn = x[keep] / x[keep].norm(dim=1, keepdim=True)
    want = keep[torch.topk(xn @ xn.T, 4, dim=1).indices]
    for a, row in enumerate(keep.tolist()):
        assert sorted(c[r == row].tolist()) == sorted(want[a].tolist())
    # fewer present rows than k: each present row links to all present rows
    r, c = G.knn_indices(x, torch.arange(20) < 3, 10)
    assert sorted(zip(r.tolist(), c.tolist())) == [(a, b) for a in range(3) for b in range(3)]


def test_sparse_op_gradient_matches_dense():
    g = torch.Generator().manual_seed(2)
    idx = torch.stack([torch.randint(0, 6, (15,), generator=g), torch.randint(0, 4, (15,), generator=g)])
    val = torch.rand(15, generator=g)
    op = G.SparseOp(idx, val, (6, 4))  # not square: the backward pass needs the real transpose
    dense = op.to_dense()
    x = torch.randn(4, 3, generator=g, requires_grad=True)
    w = torch.randn(6, 3, generator=g)
    ((op @ x) * w).sum().backward()
    assert torch.allclose(x.grad, dense.T @ w, atol=1e-6)


def test_degree_sensitive_pruning_prefers_low_degree_edges():
    # user 0 saw all 50 items (hub); users 1..50 saw one item each
    user = torch.cat([torch.zeros(50, dtype=torch.long), torch.arange(1, 51)])
    item = torch.cat([torch.arange(50), torch.arange(50)])
    hub_kept, kept_total = 0, 0
    for s in range(20):
        keep = G.degree_sensitive_sample(user, item, 51, 50, 0.5, torch.Generator().manual_seed(s))
        assert len(keep) == 50 and len(torch.unique(keep)) == 50
        hub_kept += int((user[keep] == 0).sum())
        kept_total += len(keep)
    # weights: hub edges 1/sqrt(50*2), leaf edges 1/sqrt(1*2): hub edges are ~7x less likely
    assert hub_kept / kept_total < 0.25, hub_kept / kept_total
    assert len(G.degree_sensitive_sample(user, item, 51, 50, 1.0, torch.Generator())) == 100
