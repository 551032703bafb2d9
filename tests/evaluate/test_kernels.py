"""The evaluation kernel: the exact ranking order (score descending, then item index) against
an independent NumPy ranking on scores full of ties, streaming (no n_users x n_items
block), bad scores found wherever they hide, group counts."""
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
        items = rng.permutation(n_items)[: rng.integers(1, 15)]
        cut = rng.integers(0, len(items))
        seen.append(items[:cut].tolist())
        test.append(items[cut:].tolist())
    if levels:  # few distinct values: many ties inside a row
        S = torch.as_tensor(rng.integers(0, levels, size=(n_users, n_items)), dtype=torch.float32)
    else:
        S = torch.as_tensor(rng.standard_normal((n_users, n_items)), dtype=torch.float32)
    return S, _csr(test), _csr(seen)


def _by_hand_order(row) -> list[int]:
    """Item indices of one row best first, by the rule itself: a Python sort on (-score, index)."""
    return sorted(range(len(row)), key=lambda i: (-float(row[i]), i))


def _tied_rows(n_items: int, seed: int) -> np.ndarray:
    """Rows that stress the tie rule: small integers, all equal, ties straddling rank k,
    +/-inf, signed zeros, a few distinct values among many equal ones."""
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, 3, n_items), rng.integers(-2, 2, n_items), np.zeros(n_items), np.full(n_items, 7.0),
            rng.standard_normal(n_items)]
    straddle = np.zeros(n_items)  # 5 items above, then a long run of equal ones across rank 10
    straddle[rng.choice(n_items, min(5, n_items), replace=False)] = 1.0
    rows.append(straddle)
    inf = rng.integers(0, 3, n_items).astype(float)
    inf[rng.random(n_items) < 0.3] = np.inf
    inf[rng.random(n_items) < 0.3] = -np.inf
    rows.append(inf)
    zeros = np.where(rng.random(n_items) < 0.5, -0.0, 0.0)  # -0.0 ties with 0.0
    zeros[rng.random(n_items) < 0.1] = 1.0
    rows.append(zeros)
    return np.stack(rows).astype(np.float32)


def test_reference_is_the_rule_by_hand():
    S = torch.tensor([[1.0, 3.0, 3.0, -np.inf, 2.0, 3.0], [0.0, -0.0, 5.0, 5.0, np.inf, -1.0]])
    target, exclude = _csr([[2, 4], [0]]), _csr([[1], [4]])
    top, hits, n_rel = K.reference_ranked(lambda u: S[u], np.array([0, 1]), 6, target, exclude, 4)
    assert top.tolist() == [[2, 5, 4, 0], [2, 3, 0, 1]]  # user 0: item 1 masked; user 1: item 4 masked
    assert hits.tolist() == [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    assert n_rel.tolist() == [2.0, 1.0]


@pytest.mark.parametrize("n_items", [1, 5, 20, 63, 64, 65, 130, 1349, 4100, 40_000])
def test_exact_topk_orders_ties_by_item_index(n_items):
    S = _tied_rows(n_items, seed=n_items)
    for k in sorted({1, min(10, n_items), min(20, n_items), n_items}):
        if k > 64:
            continue
        top, best = K.exact_topk(torch.from_numpy(S.copy()), k)
        for r, row in enumerate(S):
            assert top[r].tolist() == _by_hand_order(row)[:k], (n_items, k, r)
        assert np.array_equal(best.numpy(), S.max(1))


def test_one_scratch_serves_any_shape_in_any_order():
    """Buffers kept between calls (and shrunk or grown) never leak one call's values into the next."""
    scratch = K.Scratch()
    for n_items, b, seed in ((70_000, 3, 0), (9, 40, 1), (1349, 7, 2), (70_000, 5, 3), (65, 2, 4)):
        S = _tied_rows(n_items, seed)[np.random.default_rng(seed).integers(0, 8, b)]
        top, _ = K.exact_topk(torch.from_numpy(S.copy()), min(20, n_items), scratch)
        assert top.tolist() == [_by_hand_order(row)[:min(20, n_items)] for row in S]


def test_small_passes_run_on_one_thread_and_restore_the_count(monkeypatch):
    S, target, exclude = _random_case(n_users=20, n_items=30, seed=4)
    users = np.flatnonzero(np.diff(target[0]) > 0)
    seen = []

    def score(u):
        seen.append(torch.get_num_threads())
        return S[u].clone()

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for limit, want in ((1 << 22, 1), (10, 2)):  # a small pass, then one above the limit
            monkeypatch.setattr(K, "SMALL_PASS_SCORES", limit)
            seen.clear()
            rank_and_score(score, users, 30, target, exclude, ["ndcg@10"], batch_users=7)
            assert set(seen) == {want} and torch.get_num_threads() == 2
        with pytest.raises(TrainingError):  # restored after an error too
            monkeypatch.setattr(K, "SMALL_PASS_SCORES", 1 << 22)
            rank_and_score(lambda u: S[u] * np.nan, users, 30, target, exclude, ["ndcg@10"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("levels", [None, 2, 5])
@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_kernel_equals_the_numpy_reference(levels, batch):
    S, target, exclude = _random_case(levels=levels, seed=batch)
    users = np.flatnonzero(np.diff(target[0]) > 0)
    score = lambda u: S[u].clone()  # noqa: E731
    top, hits, n_rel = K.reference_ranked(score, users, S.shape[1], target, exclude, 10)
    got = list(K.iter_ranked(score, users, S.shape[1], target, exclude, 10, batch_users=batch))
    assert [r.start for r in got] == list(range(0, len(users), batch))
    assert np.array_equal(torch.cat([r.top for r in got]).numpy(), top)
    assert np.array_equal(torch.cat([r.hits for r in got]).numpy(), hits)
    assert np.array_equal(torch.cat([r.n_rel for r in got]).numpy(), n_rel)
    assert torch.equal(torch.cat([r.users for r in got]), torch.as_tensor(users))
    for row, u in enumerate(users):  # masked items never appear
        assert not set(exclude[1][exclude[0][u]:exclude[0][u + 1]].tolist()) & set(top[row].tolist())


@pytest.mark.parametrize("defer", [False, True])
def test_ties_masks_infinities_and_short_lists_against_the_reference(monkeypatch, defer):
    # the accelerator path (checks after the last batch) runs the same code
    monkeypatch.setattr(K, "_defer_checks", lambda dev: defer)
    n_items, k = 70, 20
    S = torch.from_numpy(_tied_rows(n_items, seed=1))
    S[3, :8] = 9.0  # a run of ties inside the top
    rng = np.random.default_rng(2)
    seen = [rng.choice(n_items, 25, replace=False).tolist() for _ in range(len(S))]
    seen[4] = [i for i in range(n_items) if i not in (3, 60)]  # fewer candidates than k
    S[4, 3], S[4, 60] = 2.0, 1.0
    test = [[i for i in rng.choice(n_items, 4, replace=False).tolist() if i not in s] or [3] for s in seen]
    test[4] = [60]
    target, exclude = _csr(test), _csr(seen)
    users = np.arange(len(S))
    score = lambda u: S[u].clone()  # noqa: E731
    top, hits, _ = K.reference_ranked(score, users, n_items, target, exclude, k)
    got = list(K.iter_ranked(score, users, n_items, target, exclude, k, batch_users=3))
    assert np.array_equal(torch.cat([r.top for r in got]).numpy(), top)
    assert np.array_equal(torch.cat([r.hits for r in got]).numpy(), hits)
    assert top[4][:2].tolist() == [3, 60] and hits[4][1] == 1.0  # then masked items, by index


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


@pytest.mark.parametrize("defer", [False, True])
def test_a_user_whose_candidates_all_score_minus_inf_is_an_error(monkeypatch, defer):
    monkeypatch.setattr(K, "_defer_checks", lambda dev: defer)
    S = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    S[2, [0, 1, 2, 4]] = -torch.inf  # user 2's candidates (item 3 and 5 are masked)
    target, exclude = _csr([[1]] * 4), _csr([[5], [0], [3, 5], []])

    def run(S):
        return list(K.iter_ranked(lambda u: S[u].clone(), np.arange(4), 6, target, exclude, 2, batch_users=2))

    with pytest.raises(TrainingError, match="every candidate item of user 2 .* -inf"):
        run(S)
    S[2, 4] = -1e30  # one finite candidate left: fine, the rest tie at -inf and go by index
    assert [r.top.tolist() for r in run(S)][1][0] == [4, 0]
    all_masked = _csr([[5], [0], list(range(6)), []])  # no candidate at all: not the model's fault
    S[2] = -torch.inf
    got = list(K.iter_ranked(lambda u: S[u].clone(), np.arange(4), 6, target, all_masked, 2, batch_users=2))
    assert got[1].top[0].tolist() == [0, 1]


def test_score_dtypes():
    S = torch.tensor([[3, 1, 3, 0, 2], [0, 0, 1, 1, 0]])
    target, exclude = _csr([[0], [2]]), _csr([[1], []])

    def top(scores):
        return next(K.iter_ranked(lambda u: scores[u], np.arange(2), 5, target, exclude, 3)).top.tolist()

    want = [[0, 2, 4], [2, 3, 0]]  # ties by index
    assert top(S.float()) == top(S.double()) == top(S) == top(S.to(torch.int16)) == want  # integers are scores
    assert top(S.bool()) == [[0, 2, 4], [2, 3, 0]]  # 1/0: items 0, 2, 4 tie at 1 (item 1 is masked)
    with pytest.raises(TrainingError, match="complex"):
        top(S.to(torch.complex64))


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
