"""The metric registry: values by hand, against a plain NumPy reference and ranx; one metric
alone equals the fused pass bit for bit; directions, kinds and selection from the entries;
a third-party metric from an installed distribution, lazily, into records and tables."""
import json
import math
import sys
import textwrap

import numpy as np
import pytest
import torch

from mmbench.errors import ConfigError, RegistryError
from mmbench.evaluate import metrics as M
from mmbench.protocol import Protocol

from ..helpers import planted_rows, ranx_evaluate, write_card, write_inter


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


def _reference(hits: np.ndarray, n_rel: np.ndarray, base: str, k: int) -> np.ndarray:
    """Each ranking metric as its textbook per-user formula, one user at a time."""
    def one(h, r):
        h = h[:k]
        disc = 1 / np.log2(np.arange(2, len(h) + 2))
        if base == "recall":
            return h.sum() / r
        if base == "precision":
            return h.sum() / k
        if base == "hit":
            return float(h.any())
        if base == "mrr":
            return 1 / (np.argmax(h) + 1) if h.any() else 0.0
        if base == "ndcg":
            ideal = disc[:int(min(r, len(h)))].sum()
            return (h * disc).sum() / ideal if ideal else 0.0
        return sum(h[:i + 1].sum() / (i + 1) for i in np.flatnonzero(h)) / r  # map

    return np.array([one(h, r) for h, r in zip(hits, n_rel)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_a_numpy_reference_on_random_hits(seed):
    rng = np.random.default_rng(seed)
    hits = (rng.random((200, 15)) < [0.05, 0.3, 0.7][seed]).astype(np.float64)
    n_rel = np.maximum(rng.integers(1, 30, 200), hits.sum(1)).astype(np.float64)
    names = [f"{b}@{k}" for b in M.names("ranking") for k in (1, 4, 15, 25)]
    got = M.compute(names, torch.as_tensor(hits), torch.as_tensor(n_rel))
    for name in names:
        base, k = name.split("@")
        assert np.allclose(got[name].numpy(), _reference(hits, n_rel, base, int(k)), rtol=1e-12, atol=0), name


def test_equal_to_ranx_on_random_rankings():
    pytest.importorskip("ranx")
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
    refs = ranx_evaluate(qrels, run, [f"{names[key.split('@')[0]]}@{key.split('@')[1]}" for key in ours])
    for key, vals in ours.items():
        base, k = key.split("@")
        ref = refs[f"{names[base]}@{k}"]
        assert len(ref) == n_users and np.allclose(vals.numpy(), ref, atol=1e-12), key


def test_one_metric_alone_equals_the_fused_pass_bit_for_bit():
    """A batch computes the shared work once at the largest k; each value must still equal
    the metric computed alone on its own batch (records stay byte-identical), including k
    beyond the ranking's length (tiny catalogs) and users without relevant items (NaN)."""
    g = torch.Generator().manual_seed(0)
    hits = (torch.rand(300, 12, generator=g) < 0.3).to(torch.float64)
    n_rel = torch.maximum(torch.randint(0, 15, (300,), generator=g).to(torch.float64), hits.sum(1))
    names = [f"{m}@{k}" for m in M.names("ranking") for k in (1, 3, 10, 12, 20)]
    fused = M.compute(names, hits, n_rel)
    for name in names:
        alone = M.Batch(hits, n_rel, M.parse_metric(name)[1]).compute([name])[name]
        assert fused[name].numpy().tobytes() == alone.numpy().tobytes(), name


@pytest.mark.parametrize("bad", ["ndcg", "foo@10", "ndcg@0", "ndcg@x", "rmse@10", "tail", "recall@10/head",
                                 "rmse/tail"])
def test_bad_metric_names_are_errors(bad):
    with pytest.raises(ConfigError):
        M.canonical(bad)


def test_aliases_and_canonical_names():
    assert M.canonical("NDCG@10") == "ndcg@10"
    assert M.canonical("HR@5") == "hit@5"
    assert M.canonical("hit_rate@5") == "hit@5"
    assert M.canonical("Recall@20/tail") == "recall@20/tail"
    assert M.canonical("RMSE") == "rmse"


def test_every_entry_declares_its_facts():
    kinds = {n: M.get(n).kind for n in M.names()}
    assert kinds == {**dict.fromkeys(["recall", "precision", "hit", "mrr", "ndcg", "map"], "ranking"),
                     "coverage": "beyond-accuracy", "gini": "beyond-accuracy", "novelty": "beyond-accuracy",
                     "rmse": "rating", "mae": "rating", "cold": "item-group", "tail": "item-group"}
    assert all(M.get(n).doc and callable(M.get(n).fn) for n in kinds)


@pytest.mark.parametrize("name, higher", [("ndcg@10", True), ("recall@20/tail", True), ("HR@5", True),
                                          ("rmse", False), ("mae", False), ("coverage@20", True),
                                          ("gini@20", False), ("novelty@20", True)])
def test_direction_of_any_metric_name(name, higher):
    assert M.higher_is_better(name) is higher


def test_item_groups_and_aggregates_by_hand():
    pop = np.array([5, 0, 3, 3, 1, 2])
    # head = the top ceil(0.2 * 6) = 2 items by popularity, ties by index: items 0 and 2
    assert np.flatnonzero(M.get("tail").fn(pop)).tolist() == [1, 3, 4, 5]
    assert np.flatnonzero(M.get("cold").fn(pop)).tolist() == [1]
    assert M.get("coverage").fn(np.array([0.0, 2, 0, 1])) == 0.5
    assert M.get("gini").fn(np.ones(10)) == pytest.approx(0.0)
    assert M.gini(np.array([0] * 9 + [5])) == pytest.approx(0.9)
    err, user_of, n = np.array([1.0, -3.0, 2.0]), np.array([0, 0, 1]), np.array([2, 1])
    overall, per_user = M.get("rmse").fn(err, user_of, n)
    assert overall == pytest.approx(math.sqrt(14 / 3)) and per_user == pytest.approx([math.sqrt(5), 2.0])
    overall, per_user = M.get("mae").fn(err, user_of, n)
    assert overall == pytest.approx(2.0) and per_user == pytest.approx([2.0, 2.0])


def test_selection_metric_follows_the_main_metrics_kind():
    ranking = Protocol(metrics=("recall@20", "ndcg@10"), main_metric="ndcg@10")
    rating = Protocol(metrics=("recall@20", "ndcg@10"), main_metric="rmse")
    assert ranking.valid_metric("ranking") == ranking.valid_metric("rating") == "ndcg@10"
    assert rating.valid_metric("rating") == "rmse" and rating.valid_metric("ranking") == "recall@20"
    assert rating.ranking_metrics == ["recall@20", "ndcg@10"]
    with pytest.raises(ConfigError, match="beyond-accuracy"):
        Protocol(metrics=("coverage@20",))


# -- a third-party metric -------------------------------------------------------------------------
PLUGIN = """
from mmbench.evaluate.metrics import Metric


def _dcg(batch, k):
    return batch.gains[:, :batch.cut(k)].sum(1)


DCG = Metric("dcg", "ranking", True, "discounted cumulative gain of the top k (not normalised)", _dcg)
NOT_A_METRIC = 3
"""

MODEL = """
import numpy as np
import torch

from mmbench.models import Recommender


class Fixed(Recommender):
    '''Seeded random scores, distinct with probability 1: a ranking NumPy can redo.'''

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        rng = np.random.default_rng(7)
        self.s_ = torch.as_tensor(rng.random((data.n_users, data.n_items)), dtype=torch.float32)
        self.fit_info_ = {"best_epoch": 0, "epochs_run": 0}
        return self

    def score(self, users):
        return self.s_[torch.as_tensor(users, dtype=torch.long)].clone()
"""


def _install(root, entry_points: dict[str, str], models: dict[str, str] | None = None):
    """A fake installed distribution with metrics (and models) as entry points."""
    info = root / "fake_metrics-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-metrics\nVersion: 0.1\n")
    groups = {"mmbench.metrics": entry_points, "mmbench.models": models or {}}
    (info / "entry_points.txt").write_text("".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
                                                   for g, eps in groups.items() if eps))
    (root / "fake_metrics.py").write_text(textwrap.dedent(PLUGIN))
    (root / "fake_model.py").write_text(textwrap.dedent(MODEL))


def _numpy_dcg(ds, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The test users and their DCG@k, from the model's scores by NumPy alone."""
    s = np.random.default_rng(7).random((ds.n_users, ds.n_items)).astype(np.float32)
    seen_ptr, seen = ds.csr("train", "valid")
    t_ptr, t_idx = ds.csr("test")
    users = np.flatnonzero(np.diff(t_ptr) > 0)
    out = []
    for u in users:
        row = s[u].copy()
        row[seen[seen_ptr[u]:seen_ptr[u + 1]]] = -np.inf
        top = np.argsort(-row, kind="stable")[:k]
        rel = np.isin(top, t_idx[t_ptr[u]:t_ptr[u + 1]])
        out.append(float(np.sum(rel / np.log2(np.arange(2, k + 2)))))
    return users, np.array(out)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    M._PLUGINS.clear()
    M.parse_metric.cache_clear()
    sys.modules.pop("fake_metrics", None)
    sys.modules.pop("fake_model", None)


def test_a_plugin_metric_is_found_lazily_and_checked(plugin):
    _install(plugin, {"dcg": "fake_metrics:DCG", "broken": "fake_metrics:NOT_A_METRIC"})
    assert "dcg" in M.names() and "fake_metrics" not in sys.modules  # listed from metadata only
    assert M.get("dcg").kind == "ranking" and M.higher_is_better("dcg@10") and M.canonical("DCG@5") == "dcg@5"
    hits = _hits([[1, 0, 1], [0, 0, 0]])
    got = M.compute(["dcg@3", "ndcg@3"], hits, torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert got["dcg@3"].tolist() == pytest.approx([1 + 0.5, 0.0])
    with pytest.raises(RegistryError, match="must name a mmbench.evaluate.metrics.Metric"):
        M.get("broken")
    with pytest.raises(ConfigError, match="unknown metric 'nope'.*dcg"):
        M.get("nope")


def test_a_plugin_may_not_shadow_a_builtin(plugin):
    _install(plugin, {"ndcg": "fake_metrics:DCG"})
    assert M.get("ndcg") is M.BUILTIN["ndcg"]
    with pytest.raises(RegistryError, match="'ndcg' of fake-metrics is built into mmbench"):
        M.get("whatever")


def test_a_plugin_metric_reaches_records_and_the_leaderboard(plugin, cards_dir, monkeypatch):
    from mmbench import leaderboard as lbm
    from mmbench.records import read_per_user
    from mmbench.suite import load_suite, run_suite

    _install(plugin, {"dcg": "fake_metrics:DCG"}, models={"fixed-scores": "fake_model:Fixed"})
    # the suite keeps its records (a committed board): they must come from a clean tree
    monkeypatch.setattr("mmbench.env.git_state", lambda: {"sha": "0" * 40, "dirty": False})
    write_inter(plugin / "d" / "toy.inter", planted_rows(n_users=40, n_items=30, per_user=10, seed=2))
    write_card(cards_dir, "toy", plugin / "d")
    (plugin / "s").mkdir()
    (plugin / "s" / "suite.toml").write_text('''[suite]
name = "plugin-metric"
version = 1
results = "records"
[dataset]
name = "toy"
version = "1"
[protocol]
metrics = ["ndcg@10", "dcg@10"]
main_metric = "ndcg@10"
[run]
seeds = [0]
device = "cpu"
[[models]]
name = "fixed-scores"
label = "fixed"
''')
    suite = load_suite(plugin / "s")
    assert run_suite(suite, echo=lambda *_: None, workers=1)["done"] == 1
    (path,) = sorted(suite.results_dir().rglob("seed0.json"))
    users, want = _numpy_dcg(suite.prepare(), 10)
    rec = json.loads(path.read_text())
    assert rec["metrics"]["test"]["dcg@10"] == pytest.approx(want.mean(), abs=1e-8)
    per_user = read_per_user(path)
    assert np.array_equal(per_user["users"], users) and np.allclose(per_user["dcg@10"], want, rtol=1e-12)
    lb = lbm.build(suite, suite.results_dir())
    assert lb.metrics == ["ndcg@10", "dcg@10"] and lb.row("fixed").test["dcg@10"].mean == pytest.approx(want.mean())
    md = lbm.to_markdown(lb, suite)
    assert "dcg@10" in md and f"{want.mean():.4f} ± 0.0000" in md
