"""Zoo B: LightGCN, FREEDOM, BM3, AMR and adversarial alignment, and their sparse graph helpers.

Planted data: interactions from planted user/item factors (tests/helpers.planted_rows);
two content features rendered from the same item factors with noise and missing rows.
"""
import re

import numpy as np
import pytest
import torch

from mmbench.data.dataset import TrainData
from mmbench.errors import ConfigError
from mmbench.evaluate.ranking import evaluate_ranking
from mmbench.protocol import Protocol
from mmbench.models import graph as G
from mmbench.runner import run_one, validation_context
from mmbench_baselines.adversarial import AdversarialAlignment
from mmbench_baselines.amr import AMR
from mmbench_baselines.bm3 import BM3
from mmbench_baselines.bpr import BPR
from mmbench_baselines.freedom import FREEDOM, modality_weights
from mmbench_baselines.lightgcn import LightGCN
from mmbench_baselines.pop import Pop

from .helpers import planted_rows, write_card, write_inter

N_USERS, N_ITEMS, PER_USER, SEED, DIM = 200, 120, 10, 3, 4
FAST = dict(epochs=3, batch_size=256)
MULTIMODAL = {
    "freedom": lambda **kw: FREEDOM(**kw),
    "bm3": lambda **kw: BM3(**kw),
    "amr": lambda **kw: AMR(**kw),
    "adversarial-alignment": lambda **kw: AdversarialAlignment(**kw),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are small: two threads on a shared 2-core machine only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(prepared dataset, features {key: Feature}, planted item factors aligned to the item index)."""
    from mmbench.data.cards import find_card
    from mmbench.data.prepare import prepare

    root = tmp_path_factory.mktemp("zoo_b")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMBENCH_HOME", str(root / "home"))
        mp.setenv("MMBENCH_CARDS", str(root / "cards"))
        (root / "cards").mkdir()
        write_inter(root / "d" / "zb.inter",
                    planted_rows(n_users=N_USERS, n_items=N_ITEMS, per_user=PER_USER, seed=SEED, dim=DIM))
        write_card(root / "cards", "zb", root / "d")
        ds = prepare(find_card("zb"))
    rng = np.random.default_rng(SEED)  # planted_rows draws U then V from this generator
    rng.normal(size=(N_USERS, DIM))
    V = rng.normal(size=(N_ITEMS, DIM))[[int(r[1:]) for r in ds.item_raw_ids()]]
    r = np.random.default_rng(100)
    feats = {}
    for key, d, missing in (("text/planted", 24, 0.2), ("image/planted", 32, 0.25)):
        # a different linear view of the same item factors per modality, plus noise and an offset
        x = V @ r.normal(size=(DIM, d)) + 0.3 * r.normal(size=(len(V), d)) + 2.0 * r.normal(size=d)
        feats[key] = ds.features.put(key, x.astype(np.float32), r.random(len(V)) > missing)
    # stored but not in `feats`: a key whose every row is missing
    ds.features.put("audio/absent", np.zeros((len(V), 5), np.float32), np.zeros(len(V), bool))
    return ds, feats, V


def ndcg(model, ds, split="test", metric="ndcg@10"):
    return evaluate_ranking(model.score, ds, split, [metric]).metrics[metric]


def fit(model, ds, feats=None, seed=0):
    return model.fit(ds.train_data(), feats or {}, seed=seed, context=validation_context(ds, Protocol(), "ndcg@10", "cpu"))


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


def test_lightgcn_propagation_equals_dense_hand_computation():
    # 3 users x 4 items; user 2 repeats item 0 (one edge) and item 3 has no interaction
    user = np.array([0, 0, 1, 1, 2, 2, 2])
    item = np.array([0, 1, 1, 2, 0, 1, 0])
    data = TrainData(3, 4, user, item, np.ones(7, np.float32), np.zeros(7))
    model = LightGCN(embedding_dim=2, n_layers=3, epochs=1).fit(data, seed=0)  # any weights will do
    R = np.zeros((3, 4))
    R[user, item] = 1.0
    A = np.block([[np.zeros((3, 3)), R], [R.T, np.zeros((4, 4))]])
    deg = A.sum(1)
    dinv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    A_hat = dinv[:, None] * A * dinv[None, :]
    # degrees: users 2, 2, 2; items 2, 3, 1, 0 -> the (user 0, item 1) entry is 1/sqrt(2*3)
    assert A_hat[0, 3 + 1] == pytest.approx(1 / np.sqrt(6))
    assert np.allclose(model.adj_.to_dense().numpy(), A_hat, atol=1e-7)
    E0 = model.module_.ego.weight.detach().double().numpy()
    layers = [E0]
    for _ in range(3):
        layers.append(A_hat @ layers[-1])
    want = np.mean(layers, axis=0)
    users, items = model.final_embeddings()
    got = torch.cat([users, items]).detach().double().numpy()
    assert np.allclose(got, want, atol=1e-6)
    assert np.allclose(got[3 + 3], E0[3 + 3] / 4)  # isolated item: only its own layer-0 term
    scores = model.score(torch.tensor([0, 2]))
    assert torch.allclose(scores.double(), torch.as_tensor(want[[0, 2]] @ want[3:].T), atol=1e-6)


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


def test_modality_weights_follow_freedom():
    assert modality_weights(["image/a", "text/b"], 0.1) == [0.1, 0.9]
    assert modality_weights(["audio/a", "image/b", "text/c"], 0.1) == pytest.approx([0.45, 0.1, 0.45])
    assert modality_weights(["text/b"], 0.1) == [1.0]


def test_freedom_item_graph_renormalises_over_present_modalities(planted):
    ds, feats, _ = planted
    m = FREEDOM(**FAST).fit(ds.train_data(), feats, seed=0)
    dense = m.mm_adj_.to_dense()
    t, v = feats["text/planted"].mask, feats["image/planted"].mask
    none = ~t & ~v
    assert none.any() and (t & ~v).any()
    assert torch.all(dense[torch.as_tensor(none)] == 0) and torch.all(dense[:, torch.as_tensor(none)] == 0)
    # every item with some content keeps the row mass of a complete item (k rows of 1/k = 1)
    assert torch.allclose(dense.sum(1)[torch.as_tensor(~none)], torch.ones(int((~none).sum())), atol=1e-5)
    # an item without image takes neighbours only among items that have text
    only_text = np.flatnonzero(t & ~v)
    cols = torch.nonzero(dense[only_text]).T[1].numpy()
    assert t[cols].all()


def test_freedom_feature_projection_follows_embedding_dim(planted):
    """The auxiliary loss dots user embeddings with projected features: a smaller
    embedding_dim must train (it once crashed with the 64-d projection default), and an
    explicit mismatch is a configuration error before any training."""
    from mmbench.errors import ConfigError

    ds, feats, _ = planted
    m = FREEDOM(embedding_dim=8, **FAST).fit(ds.train_data(), feats, seed=0)
    assert m.module_.user.weight.shape[1] == 8
    assert all(p.shape[0] == 8 for n, p in m.module_.content.named_parameters() if n.endswith("weight")
               and p.dim() == 2)
    with pytest.raises(ConfigError, match="feat_dim"):
        FREEDOM(embedding_dim=8, feat_dim=16, **FAST).fit(ds.train_data(), feats, seed=0)


# -- models learn the planted signal --------------------------------------------------------
@pytest.mark.slow
def test_lightgcn_beats_pop_and_bpr(planted, floors):
    ds, _, _ = planted
    lg = ndcg(fit(LightGCN(lr=0.01, batch_size=256, epochs=60, patience=10), ds), ds)
    assert lg > floors["pop"] + 0.1 and lg > floors["bpr"] + 0.02, (lg, floors)


@pytest.fixture(scope="module")
def floors(planted):
    """Test NDCG@10 of pop and of BPR-MF (same training settings as the models below)."""
    ds, _, _ = planted
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: set up before the per-test fixture runs
    try:
        bpr = fit(BPR(lr=0.01, batch_size=256, epochs=60, patience=10), ds)
        return {"pop": ndcg(Pop().fit(ds.train_data()), ds), "bpr": ndcg(bpr, ds)}
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MULTIMODAL))
def test_multimodal_model_learns_planted_signal(planted, floors, name):
    """Planted content (a linear view of the item factors) lets every multimodal model beat
    BPR-MF, which sees the same interactions without content (measured over seeds 0-2:
    NDCG@10 0.30-0.35 against 0.26 for BPR)."""
    ds, feats, _ = planted
    model = fit(MULTIMODAL[name](lr=0.01, batch_size=256, epochs=60, patience=10), ds, feats)
    got = ndcg(model, ds)
    assert got > floors["pop"] + 0.1, (got, floors)
    assert got > floors["bpr"] + 0.02, (got, floors)


def modality_probe_accuracy(reps: dict, masks: dict, train: np.ndarray, test: np.ndarray) -> float:
    """Held-out modality classifier: logistic regression on the (embedding, modality) pairs of
    the ``train`` items' present rows, accuracy on those of the ``test`` items."""
    keys = sorted(reps)

    def xy(items):
        xs, ys = [], []
        for label, k in enumerate(keys):
            rows = items[masks[k][items]]
            xs.append(reps[k][0][rows])
            ys.append(torch.full((len(rows),), float(label)))
        return torch.cat(xs), torch.cat(ys)

    x_tr, y_tr = xy(train)
    x_te, y_te = xy(test)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    clf = torch.nn.Linear(x_tr.shape[1], 1)
    opt = torch.optim.LBFGS(clf.parameters(), max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(clf((x_tr - mu) / sd).squeeze(1), y_tr)
        loss = loss + 1e-3 * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((clf((x_te - mu) / sd).squeeze(1) > 0).float() == y_te).float().mean())


@pytest.mark.slow
def test_adversarial_alignment_hides_the_modality(planted):
    """Text and image embeddings of the same items in the shared space: a held-out linear
    classifier tells them apart perfectly without the adversary and much worse with it."""
    ds, feats, _ = planted
    items = np.random.default_rng(0).permutation(ds.n_items)
    train, test = items[: ds.n_items // 2], items[ds.n_items // 2:]
    masks = {k: f.mask for k, f in feats.items()}
    kw = dict(lr=1e-3, batch_size=256, epochs=40)  # no early stopping: probe the end of the game
    plain = AdversarialAlignment(adv_weight=0.0, **kw).fit(ds.train_data(), feats, seed=0)
    aligned = AdversarialAlignment(adv_weight=1.0, **kw).fit(ds.train_data(), feats, seed=0)
    acc_plain = modality_probe_accuracy(plain.modality_representations(), masks, train, test)
    acc_aligned = modality_probe_accuracy(aligned.modality_representations(), masks, train, test)
    assert acc_plain > 0.95, acc_plain
    assert acc_aligned < acc_plain - 0.2, (acc_plain, acc_aligned)
    # and it still recommends as well as without the adversary
    assert ndcg(aligned, ds) > max(ndcg(Pop().fit(ds.train_data()), ds) + 0.1, ndcg(plain, ds) - 0.05)


def test_amr_perturbation_has_norm_eps(planted):
    ds, feats, _ = planted
    m = AMR(eps=0.37, **FAST).fit(ds.train_data(), feats, seed=0)
    u = torch.arange(0, 64)
    i = torch.as_tensor(ds.train_data().item[:64])
    j = torch.arange(64) % ds.n_items
    items, delta = m.perturbation(u, i, j)
    assert torch.equal(items, torch.unique(torch.cat([i, j])))
    has = torch.as_tensor(feats["text/planted"].mask | feats["image/planted"].mask)[items]
    norms = delta.norm(dim=1)
    assert has.any() and (~has).any()
    assert torch.allclose(norms[has], torch.full_like(norms[has], 0.37), atol=1e-5)
    assert torch.all(norms[~has] == 0)
    # the perturbation is an ascent direction: it raises the batch's BPR loss over a random one
    clean = m._bpr(u, i, j)[0]
    adv = m._bpr(u, i, j, delta)[0]
    rnd = torch.nn.functional.normalize(torch.randn(delta.shape, generator=torch.Generator().manual_seed(0)), dim=1)
    assert adv > clean and adv > m._bpr(u, i, j, 0.37 * rnd * has[:, None])[0]


# -- missing rows and modality subsets --------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MULTIMODAL))
@pytest.mark.parametrize("subset", [("text/planted",), ("image/planted",), ("text/planted", "image/planted"),
                                    ("text/planted", "audio/absent")])
def test_multimodal_models_take_any_subset_and_missing_rows(planted, name, subset):
    ds, feats, _ = planted
    chosen = {k: ds.features.get(k) for k in subset}
    model = MULTIMODAL[name](epochs=2, batch_size=256, lr=0.01).fit(ds.train_data(), chosen, seed=0)
    s = model.score(torch.arange(ds.n_users))
    assert s.shape == (ds.n_users, ds.n_items) and s.dtype == torch.float32
    assert torch.isfinite(s).all()
    assert s.std() > 0


@pytest.mark.parametrize("name", sorted(MULTIMODAL))
def test_multimodal_models_ignore_undeclared_modalities(planted, name):
    ds, feats, _ = planted
    extra = ds.features.put("meta/noise", np.random.default_rng(5).normal(size=(ds.n_items, 3)).astype(np.float32))
    users = torch.arange(ds.n_users)
    a = MULTIMODAL[name](**FAST).fit(ds.train_data(), feats, seed=0).score(users)
    b = MULTIMODAL[name](**FAST).fit(ds.train_data(), {**feats, extra.key: extra}, seed=0).score(users)
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match=r"got \['meta/noise'\]"):
        MULTIMODAL[name](**FAST).fit(ds.train_data(), {extra.key: extra}, seed=0)


@pytest.mark.parametrize("name", sorted(MULTIMODAL))
def test_multimodal_models_refuse_no_content(planted, name):
    ds, _, _ = planted
    with pytest.raises(ConfigError, match="needs at least one content feature"):
        MULTIMODAL[name](**FAST).fit(ds.train_data(), {}, seed=0)


# -- the model contract -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MULTIMODAL) + ["lightgcn"])
def test_contract_seed_fresh_scores_no_mutation_clone(planted, name):
    ds, feats, _ = planted
    make = MULTIMODAL.get(name, lambda **kw: LightGCN(**kw))
    data = ds.train_data()
    before = {k: (f.values.copy(), f.mask.copy()) for k, f in feats.items()}
    user_before = data.user.copy()
    a = make(**FAST)
    assert a.fit(data, feats, seed=4) is a
    b = a.clone().fit(data, feats, seed=4)
    c = make(**FAST).fit(data, feats, seed=5)
    users = torch.arange(0, ds.n_users, 7)
    sa = a.score(users)
    assert torch.equal(sa, b.score(users)) and not torch.equal(sa, c.score(users))
    sa.add_(1.0)  # the caller owns the tensor it gets
    assert torch.equal(a.score(users), b.score(users))
    assert a.get_params() == b.get_params() == type(a)(**a.get_params()).get_params()
    for k, (v, m) in before.items():
        assert np.array_equal(feats[k].values, v) and np.array_equal(feats[k].mask, m)
    assert np.array_equal(data.user, user_before)
    # features are inputs, not state: checkpoints and best-epoch copies stay small
    state = list(a.module_.state_dict())
    assert not [k for k in state if re.fullmatch(r"content\.[xm]\d+", k)], state
    assert name == "lightgcn" or "content.missing" in state


def test_score_reflects_restored_best_epoch(planted):
    """Scores are cached between training steps: after fit (best-epoch restore) they must be
    those of the restored parameters, i.e. the validator's best value reproduces."""
    ds, feats, _ = planted
    val = validation_context(ds, Protocol(), "ndcg@10", "cpu")
    m = FREEDOM(lr=0.05, batch_size=256, epochs=12, patience=12).fit(ds.train_data(), feats, seed=0, context=val)
    assert m.fit_info_["best_epoch"] < m.fit_info_["epochs_run"] == 12  # so a stale cache would show
    assert val.validate(m) == pytest.approx(m.fit_info_["best_valid"], abs=1e-9)


def test_runner_gives_multimodal_models_the_features(planted, tmp_path):
    ds, feats, _ = planted
    rec, _, status = run_one("bm3", ds, params={"epochs": 2, "batch_size": 256}, results=tmp_path / "r",
                             feature_keys=["text/planted", "image/planted"])
    assert status == "done"
    assert set(rec["features"]) == {"text/planted", "image/planted"}
    assert rec["features"]["text/planted"] == feats["text/planted"].fingerprint
    assert 0 <= rec["metrics"]["test"]["ndcg@10"] <= 1
