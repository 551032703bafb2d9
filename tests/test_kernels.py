"""The evaluation kernel: equal to the dense reference (ties, masks, batch sizes), streaming
(no n_users x n_items block), NaN found wherever it hides, group counts."""
import numpy as np
import pytest
import torch

from mmbench.errors import TrainingError
from mmbench.evaluate import kernels as K
from mmbench.evaluate.ranking import rank_and_score


def _csr(rows: list[list[int]]):
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    return indptr, np.array([i for r in rows for i in sorted(r)], dtype=np.int64)


def _random_case(n_users=57, n_items=41, seed=0, levels=None):
    rng = np.random.default_rng(seed)
    seen, test = [], []
    for _ in range(n_users):
        items = rng.permutation(n_items)[: rng.integers(0, 15)]
        cut = rng.integers(0, len(items) + 1)
        seen.append(items[:cut].tolist())
        test.append(items[cut:].tolist())
    if levels:  # few distinct values: many ties inside a row
        S = torch.as_tensor(rng.integers(0, levels, size=(n_users, n_items)), dtype=torch.float32)
    else:
        S = torch.as_tensor(rng.standard_normal((n_users, n_items)), dtype=torch.float32)
    return S, _csr(test), _csr(seen)


@pytest.mark.parametrize("levels", [None, 3])
@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_kernel_equals_dense_reference(levels, batch):
    S, target, exclude = _random_case(levels=levels, seed=batch)
    users = np.flatnonzero(np.diff(target[0]) > 0)
    score = lambda u: S[u].clone()  # noqa: E731
    top, hits, n_rel = K.reference_ranked(score, users, S.shape[1], target, exclude, 10)
    got = list(K.iter_ranked(score, users, S.shape[1], target, exclude, 10, batch_users=batch))
    assert [r.start for r in got] == list(range(0, len(users), batch))
    assert torch.equal(torch.cat([r.top for r in got]), top)
    assert torch.equal(torch.cat([r.hits for r in got]), hits)
    assert torch.equal(torch.cat([r.n_rel for r in got]), n_rel)
    assert torch.equal(torch.cat([r.users for r in got]), torch.as_tensor(users))
    # masked items never appear; the planted per-user hit counts are right
    for row, u in enumerate(users):
        assert not set(exclude[1][exclude[0][u]:exclude[0][u + 1]].tolist()) & set(top[row].tolist())


def test_hits_by_binary_search_on_a_hand_made_case():
    # items ranked 4,3,2,1,0 for both users; user 0 wants {3, 0}, user 1 wants {4}; user 1 has 4 masked
    S = torch.arange(5, dtype=torch.float32).repeat(2, 1)
    target = _csr([[3, 0], [4]])
    exclude = _csr([[], [4]])
    (r,) = list(K.iter_ranked(lambda u: S[u].clone(), np.array([0, 1]), 5, target, exclude, 3))
    assert r.top.tolist() == [[4, 3, 2], [3, 2, 1]]
    assert r.hits.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert r.n_rel.tolist() == [2.0, 1.0]


def test_streaming_never_builds_a_users_by_items_block():
    n_users, n_items = 300, 200
    S, target, exclude = _random_case(n_users, n_items, seed=3)
    users = np.flatnonzero(np.diff(target[0]) > 0)
    shapes = []

    def score(u):
        shapes.append(tuple(u.shape))
        return S[u].clone()

    budget = 16 * n_items * 4  # 16 users per block
    bsz = K.batch_users_for(n_items, budget_bytes=budget)
    assert bsz == 16
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        per_user, *_ = rank_and_score(score, users, n_items, target, exclude, ["ndcg@10", "recall@20"],
                                      batch_users=bsz)
    assert max(s[0] for s in shapes) == 16 and sum(s[0] for s in shapes) == len(users)
    biggest = max(e.cpu_memory_usage for e in prof.events())
    assert 0 < biggest < len(users) * n_items  # not even one byte per (user, item)
    assert len(per_user["ndcg@10"]) == len(users)


def test_batch_size_follows_the_budget():
    assert K.batch_users_for(63_001, "cpu") == K.CPU_BLOCK_BYTES // (4 * 63_001)
    assert K.batch_users_for(10, budget_bytes=1) == 1  # at least one user
    assert K.batch_users_for(1000, budget_bytes=4000 * 7) == 7


def test_nan_is_found_in_the_top_and_under_the_mask():
    S = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    target, exclude = _csr([[1], [2]]), _csr([[5], [0]])
    users = np.array([0, 1])

    def run(S):
        return list(K.iter_ranked(lambda u: S[u].clone(), users, 6, target, exclude, 2))

    assert len(run(S)) == 1  # clean scores pass
    for row, col in ((0, 5), (1, 0), (1, 3)):  # masked, masked, ranked
        bad = S.clone()
        bad[row, col] = float("nan")
        with pytest.raises(TrainingError, match="NaN"):
            run(bad)
    inf = S.clone()
    inf[0, 2] = -torch.inf  # a model may use -inf itself: not an error
    assert len(run(inf)) == 1


def test_nan_is_still_reported_when_checks_wait_for_the_last_batch(monkeypatch):
    # the accelerator path (no host sync per batch), exercised on CPU
    monkeypatch.setattr(K, "_defer_checks", lambda dev: True)
    S = torch.arange(40, dtype=torch.float32).reshape(8, 5)
    S[2, 4] = float("nan")  # masked, in the second of four batches
    target, exclude = _csr([[0]] * 8), _csr([[4]] * 8)
    seen = []
    with pytest.raises(TrainingError, match="NaN"):
        for r in K.iter_ranked(lambda u: S[u].clone(), np.arange(8), 5, target, exclude, 2, batch_users=2):
            seen.append(r.start)
    assert seen == [0, 2, 4, 6]  # every batch ran, the error came after the last


def test_the_models_tensor_is_never_written():
    S = torch.rand(4, 9, generator=torch.Generator().manual_seed(0))
    before = S.clone()
    target, exclude = _csr([[1], [2], [3], [4]]), _csr([[0, 5], [6], [7, 8], []])
    list(K.iter_ranked(lambda u: S[int(u[0]):int(u[-1]) + 1], np.arange(4), 9, target, exclude, 3))  # a view
    assert torch.equal(S, before)


def test_targets_in_group_equals_dense_count():
    _, target, _ = _random_case(seed=5)
    users = np.flatnonzero(np.diff(target[0]) > 0)
    mask = np.random.default_rng(1).random(41) < 0.3
    dense = np.zeros((len(users), 41), bool)
    for r, u in enumerate(users):
        dense[r, target[1][target[0][u]:target[0][u + 1]]] = True
    assert K.targets_in(target, users, mask).tolist() == (dense & mask).sum(1).astype(float).tolist()
