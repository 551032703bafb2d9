"""Full-ranking evaluation: masking rules, planted scores, ranx cross-check, rating metrics."""
import numpy as np
import pytest
import torch

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.evaluate.ranking import evaluate_rating, evaluate_ranking, rank_and_score
from mmbench.errors import TrainingError

from ..helpers import planted_rows, ranx_evaluate, write_card, write_inter


@pytest.fixture
def toy(tmp_path, cards_dir):
    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=30, n_items=25, per_user=10))
    write_card(cards_dir, "toy", tmp_path / "d")
    return prepare(find_card("toy"))


def _oracle(ds, split):
    """Scores that rank the split's items first (then everything else)."""
    ptr, idx = ds.csr(split)
    S = torch.zeros(ds.n_users, ds.n_items)
    for u in range(ds.n_users):
        S[u, idx[ptr[u]:ptr[u + 1]]] = 1.0
    return lambda users: S[users].clone()


def test_oracle_scores_are_perfect(toy):
    res = evaluate_ranking(_oracle(toy, "test"), toy, "test", ["recall@10", "ndcg@10", "hit@10", "mrr@10"])
    assert res.metrics["hit@10"] == 1.0 and res.metrics["mrr@10"] == 1.0
    assert res.metrics["ndcg@10"] == pytest.approx(1.0)
    n_rel = np.diff(toy.csr("test")[0])[res.users]
    assert np.allclose(res.per_user["recall@10"], np.minimum(n_rel, 10) / n_rel)


def test_seen_items_are_masked(toy):
    # scores that love the training items: masking must hide them entirely at test time
    score_train = _oracle(toy, "train")
    score_valid = _oracle(toy, "valid")
    both = lambda u: score_train(u) * 2 + score_valid(u)  # noqa: E731
    res = evaluate_ranking(both, toy, "test", ["ndcg@10"], keep_topk=True)
    ptr, idx = toy.csr("train", "valid")
    for row, u in enumerate(res.users):
        seen = set(idx[ptr[u]:ptr[u + 1]].tolist())
        assert not seen & set(res.topk[row].tolist())
    # without masking valid at test, the valid items come back to the top
    res2 = evaluate_ranking(both, toy, "test", ["ndcg@10"], keep_topk=True, mask_valid_at_test=False)
    vptr, vidx = toy.csr("valid")
    u = res2.users[0]
    assert set(vidx[vptr[u]:vptr[u + 1]].tolist()) <= set(res2.topk[0].tolist())


def test_valid_evaluation_masks_only_train(toy):
    res = evaluate_ranking(_oracle(toy, "valid"), toy, "valid", ["hit@5"])
    assert res.metrics["hit@5"] == 1.0
    assert len(res.users) == int((np.diff(toy.csr("valid")[0]) > 0).sum())


def test_kept_layout_follows_split_and_masking_rule(toy):
    """Passes on one dataset object reuse its evaluation layout; switching split or masking
    rule in any order must give what a fresh dataset object gives."""
    g = torch.Generator().manual_seed(1)
    S = torch.rand(toy.n_users, toy.n_items, generator=g)
    f = lambda u: S[u].clone()  # noqa: E731
    names = ["ndcg@10", "recall@5", "map@20"]
    calls = [("valid", True), ("test", True), ("test", False), ("valid", True), ("test", True), ("test", True)]
    for split, mask in calls:
        got = evaluate_ranking(f, toy, split, names, mask_valid_at_test=mask)
        fresh = prepare(find_card("toy"))  # a new object: no kept layout
        want = evaluate_ranking(f, fresh, split, names, mask_valid_at_test=mask)
        assert got.metrics == want.metrics, (split, mask)
        for k in want.per_user:
            assert np.array_equal(got.per_user[k], want.per_user[k])
    with_valid = evaluate_ranking(f, toy, "test", names, keep_topk=True, mask_valid_at_test=False).topk
    without = evaluate_ranking(f, toy, "test", names, keep_topk=True, mask_valid_at_test=True).topk
    assert not np.array_equal(with_valid, without)


def test_batching_does_not_change_results(toy):
    g = torch.Generator().manual_seed(0)
    S = torch.rand(toy.n_users, toy.n_items, generator=g)
    f = lambda u: S[u].clone()  # noqa: E731
    a = evaluate_ranking(f, toy, "test", ["ndcg@10", "map@20"], batch_users=1000)
    b = evaluate_ranking(f, toy, "test", ["ndcg@10", "map@20"], batch_users=3)
    for k in a.per_user:
        assert np.array_equal(a.per_user[k], b.per_user[k])


def test_matches_ranx_on_model_rankings(toy):
    pytest.importorskip("ranx")
    g = torch.Generator().manual_seed(1)
    S = torch.rand(toy.n_users, toy.n_items, generator=g)
    res = evaluate_ranking(lambda u: S[u].clone(), toy, "test", ["ndcg@10", "recall@10", "map@10", "mrr@10"],
                           keep_topk=True)
    ptr, idx = toy.csr("test")
    qrels = {f"u{u:04d}": {f"i{i}": 1 for i in idx[ptr[u]:ptr[u + 1]]} for u in res.users}
    run = {f"u{u:04d}": {f"i{i}": float(20 - r) for r, i in enumerate(res.topk[row])} for row, u in enumerate(res.users)}
    refs = ranx_evaluate(qrels, run, ["ndcg@10", "recall@10", "map@10", "mrr@10"])
    for m, ref in refs.items():
        assert len(ref) == len(res.users) and np.allclose(res.per_user[m], ref, atol=1e-9), m


def test_nan_scores_and_wrong_shape_are_errors(toy):
    with pytest.raises(TrainingError, match="NaN"):
        evaluate_ranking(lambda u: torch.full((len(u), toy.n_items), float("nan")), toy, "test", ["ndcg@10"])
    with pytest.raises(TrainingError, match="shape"):
        evaluate_ranking(lambda u: torch.zeros(len(u), 3), toy, "test", ["ndcg@10"])


def test_rating_metrics_by_hand(toy):
    u, i, r = toy.pairs("test")
    res = evaluate_rating(lambda uu, ii: torch.as_tensor(r, dtype=torch.float32)[: len(uu)] + 1.0, toy, "test",
                          batch=10**9)
    assert res.metrics["rmse"] == pytest.approx(1.0) and res.metrics["mae"] == pytest.approx(1.0)


def test_core_loop_never_recommends_excluded_items():
    n_items = 6
    target = (np.array([0, 1, 2]), np.array([5, 4]))
    exclude = (np.array([0, 2, 3]), np.array([0, 1, 2]))
    scores = torch.tensor([[9, 8, 7, 6, 5, 4.0], [9, 8, 7, 6, 5, 4.0]])
    per_user, topk, counts, _ = rank_and_score(lambda u: scores[u].clone(), np.array([0, 1]), n_items, target,
                                               exclude, ["hit@1", "recall@4"], keep_topk=True)
    assert topk[0].tolist()[:4] == [2, 3, 4, 5] and topk[1][0] == 0
    assert per_user["recall@4"].tolist() == [1.0, 1.0] and per_user["hit@1"].tolist() == [0.0, 0.0]


def test_popularity_ties_are_ranked_by_item_index(toy):
    """Pop scores raw counts (many equal): its lists follow (count descending, item index),
    computed here with NumPy from the split itself."""
    from mmbench_baselines.pop import Pop

    model = Pop().fit(toy.train_data())
    res = evaluate_ranking(model.score, toy, "test", ["ndcg@10"], keep_topk=True)
    pop = np.bincount(toy.pairs("train")[1], minlength=toy.n_items).astype(float)
    assert len(np.unique(pop)) < toy.n_items  # the case has ties
    ptr, idx = toy.csr("train", "valid")
    for row, u in enumerate(res.users):
        p = pop.copy()
        p[idx[ptr[u]:ptr[u + 1]]] = -np.inf
        assert res.topk[row].tolist() == np.lexsort((np.arange(toy.n_items), -p))[:10].tolist()
