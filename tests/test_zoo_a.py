"""Content and fusion baselines: cold start, missing rows, attention, rating track, rank fusion."""
import numpy as np
import pytest
import torch

from mmbench.check import check_dataset, check_model, temporary_home
from mmbench.data.dataset import TrainData
from mmbench.errors import ConfigError
from mmbench.evaluate.ranking import evaluate_ranking
from mmbench.features.store import Feature
from mmbench.protocol import Protocol
from mmbench.runner import ModelSpec, dataset_features, validation_context
from mmbench.synthetic import evaluate_cold, make_synthetic

CONTENT_MODELS = ["itemknn-cbf", "content-cosine", "vbpr", "early-fusion", "late-fusion", "hybrid-fusion",
                  "attention-fusion", "tensor-fusion"]
RATING_MODELS = ["vbpr-rating", "early-fusion-rating", "attention-fusion-rating"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny data: one thread is fastest on a shared machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    with temporary_home():
        yield check_dataset()


def _fit(name, ds, features=None, seed=0, **params):
    spec = ModelSpec.resolve(name)
    feats = dataset_features(spec.cls, ds, None) if features is None else features
    return spec.cls(**spec.params(params)).fit(ds.train_data(), feats, seed=seed)


def _feature(key, values, mask):
    values = np.asarray(values, dtype=np.float32)
    return Feature(key, values, np.asarray(mask, dtype=bool), "test", {})


# -- cold start: content beats ID-only models on items unseen in training -------------------------
@pytest.fixture(scope="module")
def cold_setup():
    with temporary_home():
        ds = make_synthetic(seed=0)
        bpr = _train("bpr", ds)
        yield ds, evaluate_cold(bpr.score, ds)


def _train(name, ds):
    spec = ModelSpec.resolve(name)
    given = {"lr": 0.01, "batch_size": 256, "epochs": 60, "patience": 8}
    params = spec.params({k: v for k, v in given.items() if k in spec.cls.param_names()})
    val = validation_context(ds, Protocol(), "ndcg@20", "cpu")
    return spec.cls(**params).fit(ds.train_data(), dataset_features(spec.cls, ds, None), seed=0, context=val)


@pytest.mark.slow
def test_bpr_is_near_random_on_cold_items(cold_setup):
    ds, bpr_cold = cold_setup
    assert bpr_cold["candidates"] >= 60 and bpr_cold["users"] > 100
    assert abs(bpr_cold["recall@20"] - bpr_cold["random_recall@20"]) < 0.08, bpr_cold


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_content_models_beat_bpr_on_cold_items(name, cold_setup):
    ds, bpr_cold = cold_setup
    model = _train(name, ds)
    cold = evaluate_cold(model.score, ds)
    assert cold["recall@20"] > bpr_cold["recall@20"] + 0.15, (cold, bpr_cold)
    assert cold["ndcg@20"] > 1.5 * bpr_cold["ndcg@20"], (cold, bpr_cold)
    # and they still rank warm items: the full test ranking is far above a random order
    full = evaluate_ranking(model.score, ds, "test", ["recall@20"], beyond_accuracy=False).metrics["recall@20"]
    assert full > 3 * 20 / ds.n_items, full


# -- missing rows: the mask is used, never the values -----------------------------------------------
@pytest.mark.parametrize("name", CONTENT_MODELS + RATING_MODELS)
def test_missing_rows_are_read_from_the_mask_only(name, tiny):
    store = tiny.features
    clean, garbage = {}, {}
    rng = np.random.default_rng(0)
    for k in store.keys():
        f = store.get(k)
        mask = f.mask.copy()
        mask[0] = False  # item 0 has no content at all
        values = f.values.copy()
        values[~mask] = 0.0
        clean[k] = _feature(k, values, mask)
        junk = values.copy()
        junk[~mask] = rng.normal(scale=1e3, size=(int((~mask).sum()), values.shape[1]))
        garbage[k] = _feature(k, junk, mask)
    params = {"epochs": 2, "batch_size": 128} if name != "itemknn-cbf" else {}
    a = _fit(name, tiny, clean, **params).score(torch.arange(tiny.n_users))
    b = _fit(name, tiny, garbage, **params).score(torch.arange(tiny.n_users))
    assert torch.isfinite(a).all()
    assert torch.equal(a, b), "values of rows marked missing changed the scores"


@pytest.mark.parametrize("name", CONTENT_MODELS + RATING_MODELS)
def test_content_models_need_some_content(name, tiny):
    with pytest.raises(ConfigError, match="needs at least one content feature"):
        _fit(name, tiny, {})


# -- attention fusion ----------------------------------------------------------------------------
def _masked_features(ds):
    out = {}
    for k in ds.features.keys():
        f = ds.features.get(k)
        mask = f.mask.copy()
        mask[0] = False  # item 0: every modality missing
        mask[1] = k.startswith("text")  # item 1: only text
        out[k] = _feature(k, np.where(mask[:, None], f.values, 0.0), mask)
    return out


@pytest.mark.parametrize("variant", ["additive", "cross"])
def test_attention_weights_per_item_and_zero_for_missing_rows(variant, tiny):
    feats = _masked_features(tiny)
    m = _fit("attention-fusion", tiny, feats, variant=variant, epochs=3, batch_size=64)
    w = m.attention_weights()
    keys = m.feature_keys_
    assert keys == sorted(feats) and w.shape == (tiny.n_items, len(keys))
    assert torch.allclose(w.sum(1), torch.ones(tiny.n_items), atol=1e-6)
    present = torch.as_tensor(np.stack([feats[k].mask for k in keys], 1))
    some = present.any(1)
    assert (w[some][~present[some]] == 0).all(), "a missing row got attention"
    assert torch.equal(w[1], torch.tensor([0.0, 0.0, 1.0]))  # only text present
    assert torch.allclose(w[0], torch.full((3,), 1 / 3), atol=0.2) and (w[0] > 0).all()  # falls back to missing embeddings
    assert w[some].std(0).max() > 0  # weights differ between items: they are per item
    sub = m.attention_weights(torch.tensor([3, 1]))
    assert torch.allclose(sub, w[[3, 1]], atol=1e-6)


def test_attention_embed_mode_uses_learned_missing_embedding(tiny):
    feats = _masked_features(tiny)
    before = _fit("attention-fusion", tiny, feats, missing="embed", epochs=1, batch_size=64)
    after = _fit("attention-fusion", tiny, feats, missing="embed", epochs=3, batch_size=64)
    proj = after.module_.proj
    emb, present = proj(torch.tensor([0, 1]))
    assert not present[:, 0].any()
    for j in range(len(proj.keys)):  # a missing row's projection is the key's missing embedding
        assert torch.equal(emb[j, 0], proj.missing[j])
    assert not torch.equal(before.module_.proj.missing, proj.missing)  # ... and it keeps training
    assert (after.attention_weights()[1] > 0).all()  # missing keys take part in the attention


# -- rating track ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rating_data():
    with temporary_home():
        yield make_synthetic(seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", RATING_MODELS + ["mf"])
def test_rating_models_beat_the_global_mean(name, rating_data):
    from mmbench.synthetic import cold_items

    ds = rating_data
    spec = ModelSpec.resolve(name)
    val = validation_context(ds, Protocol(main_metric="rmse"), "rmse", "cpu")
    m = spec.cls().fit(ds.train_data(), dataset_features(spec.cls, ds, None), seed=0, context=val)
    u, i, r = ds.pairs("test")
    pred = m.predict(torch.as_tensor(u), torch.as_tensor(i)).numpy()
    mean = ds.train_data().rating.mean()
    rmse = lambda p, t: float(np.sqrt(np.mean((p - t) ** 2)))  # noqa: E731
    cold = np.isin(i, cold_items(ds))
    ratio = rmse(pred, r) / rmse(mean, r)
    cold_ratio = rmse(pred[cold], r[cold]) / rmse(mean, r[cold])
    if name == "mf":  # learns the warm items, but has nothing to say about cold ones
        assert ratio < 0.95 and cold_ratio > 0.95, (ratio, cold_ratio)
    else:  # content also rates the items never seen in training
        assert ratio < 0.88 and cold_ratio < 0.93, (ratio, cold_ratio)
    assert torch.allclose(m.score(torch.as_tensor(u[:5]))[torch.arange(5), torch.as_tensor(i[:5])],
                          torch.as_tensor(pred[:5]), atol=1e-5)  # ranking is by predicted rating


# -- VBPR and ItemKNN-CBF against hand computations -----------------------------------------------------
def test_vbpr_score_is_the_papers_formula(tiny):
    m = _fit("vbpr", tiny, epochs=2, batch_size=64)
    mod = m.module_
    u, i = 3, 7
    emb, _ = mod.proj(torch.tensor([i]))
    z = emb.sum(0)[0]  # E f_i and beta' f_i (last output)
    expected = (mod.beta_item.weight[i, 0] + mod.gamma_user.weight[u] @ mod.gamma_item.weight[i]
                + mod.theta_user.weight[u] @ z[:-1] + z[-1])
    got = m.score(torch.tensor([u]))[0, i]
    assert torch.allclose(got, expected, atol=1e-5)
    assert mod.gamma_user.weight.shape[1] == 10 and mod.theta_user.weight.shape[1] == 10


def test_itemknn_cbf_hand_computed():
    # unit 2-d content: a ~ b (cos 0.995), c orthogonal to a, d opposite to a
    vals = [[1, 0], [1, 0.1], [0, 1], [-1, 0]]
    feats = {"text/t": _feature("text/t", vals, [True] * 4)}
    data = TrainData(1, 4, np.array([0]), np.array([0]), np.array([1.0], np.float32), np.array([0]))
    from mmbench_baselines.itemknn_cbf import ItemKNNCBF

    m = ItemKNNCBF(k=1, normalize="none").fit(data, feats)
    s = m.score(torch.tensor([0]))[0]
    cos_ab = 1 / np.sqrt(1.01)
    # b's nearest neighbour is a (the user's item); a's is b, c's is b, d has no positive one
    assert s.tolist() == pytest.approx([0.0, cos_ab, 0.0, 0.0], abs=1e-6)
    m2 = ItemKNNCBF(k=3, normalize="none").fit(data, feats)
    s2 = m2.score(torch.tensor([0]))[0]
    assert s2.tolist() == pytest.approx([0.0, cos_ab, 0.0, 0.0], abs=1e-6)  # negatives and zeros dropped
    with pytest.raises(ConfigError):
        ItemKNNCBF(k=0).fit(data, feats)


# -- late fusion: weights and rank-level fusion ------------------------------------------------------
def test_late_fusion_weights(tiny):
    m = _fit("late-fusion", tiny, epochs=3, batch_size=64)
    w = m.fusion_weights()
    assert list(w) == ["audio/synthetic", "image/synthetic", "text/synthetic", "id"]
    assert sum(w.values()) == pytest.approx(4.0)
    assert len(set(round(v, 6) for v in w.values())) > 1  # learned, not fixed
    h = _fit("hybrid-fusion", tiny, epochs=2, batch_size=64, use_id=False)
    assert list(h.fusion_weights()) == ["early", "audio/synthetic", "image/synthetic", "text/synthetic"]


@pytest.mark.parametrize("name, params, message", [
    ("attention-fusion", {"variant": "bogus"}, "variant='bogus'"),
    ("attention-fusion", {"variant": "cross", "embedding_dim": 15, "heads": 2}, "not divisible"),
    ("late-fusion", {"rank_fusion": "bogus"}, "rank_fusion='bogus'"),
    ("early-fusion", {"missing": "impute"}, "missing='impute'"),
    ("tensor-fusion", {"proj_dim": 200}, "lower proj_dim"),
    ("content-cosine", {"profile": "x"}, "profile='x'"),
])
def test_invalid_options_are_clear_errors(name, params, message, tiny):
    with pytest.raises(ConfigError, match=message):
        _fit(name, tiny, epochs=1, **params)


@pytest.mark.slow
def test_rank_fuse_matches_hand_computed_rrf():
    from mmbench_baselines.fusion import rank_fuse

    s1 = torch.tensor([[5.0, 4, 3, 2, 1]])  # ranking 0 1 2 3 4
    s2 = torch.tensor([[1.0, 5, 4, 3, 2]])  # ranking 1 2 3 4 0
    # depth 3: lists [0 1 2] and [1 2 3]; RRF(k=60): 1 -> 1/62+1/61, 2 -> 1/63+1/62, 0 -> 1/61, 3 -> 1/63
    out = rank_fuse([s1, s2], method="rrf", depth=3)
    assert torch.argsort(out[0], descending=True).tolist() == [1, 2, 0, 3, 4]
    assert (out[0, [1, 2, 0, 3]] > 1).all() and out[0, 4] < 0  # item 4 is in no list: below the fused ones
    # excluding item 1 (e.g. a training item): lists [0 2 3] and [2 3 4]
    out = rank_fuse([s1, s2], method="rrf", depth=3, exclude=(torch.tensor([0]), torch.tensor([1])))
    assert torch.argsort(out[0], descending=True).tolist() == [2, 3, 0, 4, 1]
    # weighted sum with weights favouring the second run: min-max scores 1 -> 0.75*1 + 0.25*... (s2 wins)
    out = rank_fuse([s1, s2], method="wsum", depth=5, weights=[0.1, 0.9])
    assert torch.argsort(out[0], descending=True).tolist()[:2] == [1, 2]


@pytest.mark.slow
def test_late_fusion_rank_fusion_gives_a_valid_ranking(tiny):
    from mmbench_baselines.fusion import _rows, rank_fuse

    m = _fit("late-fusion", tiny, epochs=3, batch_size=64, rank_fusion="rrf", fusion_depth=10)
    users = torch.arange(tiny.n_users)
    s = m.score(users)
    assert s.shape == (tiny.n_users, tiny.n_items) and torch.isfinite(s).all()
    indptr, indices = tiny.csr("train")
    for u in range(tiny.n_users):
        seen = indices[indptr[u]:indptr[u + 1]]
        top = torch.argsort(s[u], descending=True)[:10].tolist()
        assert not set(top) & set(seen.tolist()), "a training item is in the fused list"
        assert len(set(s[u, top].tolist())) == 10  # a strict order
    # the same as fusing the per-scorer rankings of the trained model by hand
    mod = m.module_
    up = mod.user_parts(users)
    v, _ = m.item_table()
    vp = v.view(v.shape[0], len(mod.names), mod.dim)
    blocks = [up[:, j] @ vp[:, j].T for j in range(len(mod.names))]
    with torch.no_grad():
        ref = rank_fuse(blocks, method="rrf", depth=10, exclude=_rows(m.train_csr_, users), base=m.module_.users(users) @ v.T)
    assert torch.equal(torch.argsort(s, 1, descending=True)[:, :10], torch.argsort(ref, 1, descending=True)[:, :10])
    res = evaluate_ranking(m.score, tiny, "test", ["recall@10"], beyond_accuracy=False)
    assert 0.0 <= res.metrics["recall@10"] <= 1.0
    assert all(r.passed for r in check_model("late-fusion", dataset=tiny, params={"rank_fusion": "wsum"}))


# -- GPU ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", CONTENT_MODELS + RATING_MODELS)
def test_cuda(name, tiny):
    spec = ModelSpec.resolve(name)
    params = {k: v for k, v in {"epochs": 2, "batch_size": 64}.items() if k in spec.cls.param_names()}
    m = spec.cls(**params).fit(tiny.train_data(), dataset_features(spec.cls, tiny, None), seed=0, device="cuda")
    s = m.score(torch.arange(5, device="cuda"))
    assert s.device.type == "cuda" and torch.isfinite(s).all()
    cold = evaluate_cold(m.score, tiny, device="cuda")
    assert 0.0 <= cold["recall@20"] <= 1.0
    assert all(r.passed for r in check_model(name, dataset=tiny, device="cuda")), name
