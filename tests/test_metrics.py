"""Metric values by hand, and against ranx on real rankings."""
import math

import numpy as np
import pytest
import torch

from mmbench.evaluate import metrics as M
from mmbench.errors import ConfigError


def _hits(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_hand_computed_values():
    # user 0: hits at ranks 1 and 3 of 3, 2 relevant; user 1: hit at rank 2 of 2, 4 relevant
    hits = _hits([[1, 0, 1], [0, 1, 0]])
    n_rel = torch.tensor([2.0, 4.0], dtype=torch.float64)
    v = {k: t.numpy() for k, t in M.compute(["recall@3", "precision@3", "hit@3", "mrr@3", "ndcg@3", "map@3",
                                             "recall@2", "ndcg@2", "map@2", "mrr@2", "precision@2"],
                                            hits, n_rel).items()}
    assert v["recall@3"] == pytest.approx([1.0, 0.25])
    assert v["precision@3"] == pytest.approx([2 / 3, 1 / 3])
    assert v["hit@3"] == pytest.approx([1.0, 1.0])
    assert v["mrr@3"] == pytest.approx([1.0, 0.5])
    idcg2 = 1 + 1 / math.log2(3)
    assert v["ndcg@3"][0] == pytest.approx((1 + 0.5) / idcg2)
    assert v["ndcg@3"][1] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5))
    assert v["map@3"] == pytest.approx([(1 + 2 / 3) / 2, 0.5 / 4])
    # k=2 for user 1 with 4 relevant: ideal DCG counts only 2 positions
    assert v["ndcg@2"][1] == pytest.approx((1 / math.log2(3)) / idcg2)
    assert v["map@2"] == pytest.approx([1 / 2, 0.5 / 4])
    assert v["recall@2"] == pytest.approx([0.5, 0.25])
    assert v["precision@2"] == pytest.approx([0.5, 0.5])


def test_no_hit_gives_zero():
    v = M.compute(["ndcg@2", "mrr@2", "map@2", "hit@2"], _hits([[0, 0]]), torch.tensor([1.0], dtype=torch.float64))
    assert all(float(t[0]) == 0.0 for t in v.values())


@pytest.mark.parametrize("bad", ["ndcg", "foo@10", "ndcg@0", "ndcg@x"])
def test_bad_metric_names_are_errors(bad):
    with pytest.raises(ConfigError):
        M.parse_metric(bad)


def test_aliases_and_canonical_names():
    assert M.canonical("NDCG@10") == "ndcg@10"
    assert M.canonical("HR@5") == "hit@5"
    assert M.canonical("hit_rate@5") == "hit@5"
    assert not M.higher_is_better("rmse") and M.higher_is_better("recall@20")


def test_equal_to_ranx_on_random_rankings():
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(0)
    n_users, n_items, K = 50, 30, 10
    qrels, run, hit_rows, n_rel = {}, {}, [], []
    for u in range(n_users):
        rel = set(rng.choice(n_items, size=rng.integers(1, 8), replace=False).tolist())
        ranking = rng.permutation(n_items)[:K]
        qrels[f"u{u:03d}"] = {f"d{i}": 1 for i in rel}
        run[f"u{u:03d}"] = {f"d{i}": float(K - r) for r, i in enumerate(ranking)}  # strictly decreasing: no ties
        hit_rows.append([1.0 if i in rel else 0.0 for i in ranking])
        n_rel.append(len(rel))
    ours = M.compute([f"{m}@{k}" for m in ("recall", "precision", "hit", "mrr", "ndcg", "map") for k in (5, 10)],
                     _hits(hit_rows), torch.tensor(n_rel, dtype=torch.float64))
    names = {"hit": "hit_rate", "map": "map", "mrr": "mrr", "ndcg": "ndcg", "recall": "recall", "precision": "precision"}
    q, r = ranx.Qrels(qrels), ranx.Run(run)
    for key, vals in ours.items():
        base, k = key.split("@")
        ref = ranx.evaluate(q, r, f"{names[base]}@{k}", return_mean=False)
        assert np.allclose(vals.numpy(), ref, atol=1e-12), key


def test_shared_computation_equals_each_metric_function_bit_for_bit():
    """compute() shares work across metrics and k; every value must still equal the plain
    per-metric function exactly (records stay byte-identical), including k beyond the
    ranking's length (tiny catalogs) and users without relevant items."""
    g = torch.Generator().manual_seed(0)
    hits = (torch.rand(300, 12, generator=g) < 0.3).to(torch.float64)
    n_rel = torch.randint(0, 15, (300,), generator=g).to(torch.float64)
    n_rel = torch.maximum(n_rel, hits.sum(1))
    n_rel[n_rel == 0] = 1.0
    names = [f"{m}@{k}" for m in M.RANKING_METRICS for k in (1, 3, 10, 12, 20)]
    got = M.compute(names, hits, n_rel)
    for name in names:
        base, k = M.parse_metric(name)
        want = M.RANKING_METRICS[base](hits, n_rel, k)
        assert torch.equal(got[name], want), name
