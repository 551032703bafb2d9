"""Properties every built-in baseline shares: cold start, the missing-row mask, modality subsets, the model contract, planted-signal learning, CUDA."""
import re

import numpy as np
import pytest
import torch
from mmbench_baselines.lightgcn import LightGCN

from mmbench.check import check_model
from mmbench.errors import ConfigError
from mmbench.evaluate.ranking import evaluate_ranking
from mmbench.protocol import Protocol
from mmbench.runner import ModelSpec, dataset_features, run_one, validation_context
from mmbench.synthetic import evaluate_cold

from .common import (
    CONTENT_MODELS,
    FAST,
    MULTIMODAL,
    RATING_MODELS,
    _feature,
    _fit,
    _train,
    check_drop_modality,
    fit,
    ndcg,
)


@pytest.mark.slow
def test_bpr_is_near_random_on_cold_items(cold_setup):
    ds, bpr_cold = cold_setup
    assert bpr_cold["candidates"] >= 60 and bpr_cold["users"] > 100
    assert abs(bpr_cold["recall@20"] - bpr_cold["random_recall@20"]) < 0.08, bpr_cold


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_content_models_beat_bpr_on_cold_items(name, cold_setup):
    ds, bpr_cold = cold_setup
    # the paper's two-layer post-fusion network of tensor fusion is unsteady at the shared lr 1e-2
    # (cold recall@20 0.35 there, 0.46 at 3e-3; its default is 1e-3)
    model = _train(name, ds, **({"lr": 3e-3} if name == "tensor-fusion" else {}))
    cold = evaluate_cold(model.score, ds)
    assert cold["recall@20"] > bpr_cold["recall@20"] + 0.15, (cold, bpr_cold)
    assert cold["ndcg@20"] > 1.5 * bpr_cold["ndcg@20"], (cold, bpr_cold)
    # and they still rank warm items: the full test ranking is far above a random order
    full = evaluate_ranking(model.score, ds, "test", ["recall@20"], beyond_accuracy=False).metrics["recall@20"]
    assert full > 3 * 20 / ds.n_items, full


# -- missing rows: the mask is used, never the values -----------------------------------------------
@pytest.mark.parametrize("name", CONTENT_MODELS + RATING_MODELS + ["late-fusion:impute", "early-fusion:impute",
                                                                   "attention-fusion:impute", "tensor-fusion:impute"])
def test_missing_rows_are_read_from_the_mask_only(name, tiny):
    name, _, missing = name.partition(":")
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
    if missing:  # imputed rows are built from the present rows of the other keys only
        params["missing"] = missing
    a = _fit(name, tiny, clean, **params).score(torch.arange(tiny.n_users))
    b = _fit(name, tiny, garbage, **params).score(torch.arange(tiny.n_users))
    assert torch.isfinite(a).all()
    assert torch.equal(a, b), "values of rows marked missing changed the scores"


# (FREEDOM and ItemKNN-CBF rebuild their item graph: a dropped item's neighbours' scores move too;
# BM3 scores without content; tests/test_robustness.py checks all of them against a rebuilt model)
@pytest.mark.parametrize("name", [m for m in CONTENT_MODELS if m != "itemknn-cbf"] + RATING_MODELS
                         + ["amr", "adversarial-alignment"])
def test_drop_modality_changes_only_the_dropped_items(name, tiny):
    model = _fit(name, tiny, epochs=2, batch_size=128)
    check_drop_modality(model, tiny, "image/synthetic", np.arange(12))
    with pytest.raises(ConfigError, match=r"cannot drop feature 'image/nope': the model reads \['audio/synthetic'"):
        with model.drop_modality("image/nope"):
            pass


@pytest.mark.parametrize("name", CONTENT_MODELS + RATING_MODELS)
def test_content_models_need_some_content(name, tiny):
    with pytest.raises(ConfigError, match="needs at least one content feature"):
        _fit(name, tiny, {})


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


@pytest.mark.parametrize("name, params, message", [
    ("attention-fusion", {"variant": "bogus"}, "variant='bogus'"),
    ("attention-fusion", {"variant": "cross", "embedding_dim": 15, "heads": 2}, "not divisible"),
    ("late-fusion", {"rank_fusion": "bogus"}, "rank_fusion='bogus'"),
    ("early-fusion", {"missing": "mean"}, "missing='mean'"),
    ("tensor-fusion", {"proj_dim": 200}, "lower proj_dim"),
    ("content-cosine", {"profile": "x"}, "profile='x'"),
    ("transformer-fusion", {"embedding_dim": 15, "heads": 2}, "not divisible"),
    ("transformer-fusion", {"pooling": "max"}, "pooling='max'"),
    ("subspace-alignment", {"objective": "dcca"}, "objective='dcca'"),
])
def test_invalid_options_are_clear_errors(name, params, message, tiny):
    with pytest.raises(ConfigError, match=message):
        _fit(name, tiny, epochs=1, **params)


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


# -- models learn the planted signal --------------------------------------------------------
@pytest.mark.slow
def test_lightgcn_beats_pop_and_bpr(planted, floors):
    ds, _, _ = planted
    lg = ndcg(fit(LightGCN(lr=0.01, batch_size=256, epochs=60, patience=10), ds), ds)
    assert lg > floors["pop"] + 0.1 and lg > floors["bpr"] + 0.02, (lg, floors)


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
    extra = ds.features.put("misc/noise", np.random.default_rng(5).normal(size=(ds.n_items, 3)).astype(np.float32))
    users = torch.arange(ds.n_users)
    a = MULTIMODAL[name](**FAST).fit(ds.train_data(), feats, seed=0).score(users)
    b = MULTIMODAL[name](**FAST).fit(ds.train_data(), {**feats, extra.key: extra}, seed=0).score(users)
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match=r"got \['misc/noise'\]"):
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
    # features are inputs, not state (checkpoints and best-epoch copies stay small), unless fine-tuned
    state = list(a.module_.state_dict())
    assert not [k for k in state if re.fullmatch(r"content\.m\d+", k)], state
    rows = [k for k in state if re.fullmatch(r"content\.x\d+", k)]
    assert bool(rows) == bool(getattr(a, "finetune_features", False)), state
    assert name == "lightgcn" or "content.missing" in state


def test_runner_gives_multimodal_models_the_features(planted, tmp_path):
    ds, feats, _ = planted
    rec, _, status = run_one("bm3", ds, params={"epochs": 2, "batch_size": 256}, results=tmp_path / "r",
                             feature_keys=["text/planted", "image/planted"])
    assert status == "done"
    assert set(rec["features"]) == {"text/planted", "image/planted"}
    assert rec["features"]["text/planted"] == feats["text/planted"].fingerprint
    assert 0 <= rec["metrics"]["test"]["ndcg@10"] <= 1


# -- declared feature preprocessing and fine-tuning -------------------------------------------------
def _finetunable():
    from mmbench import registry

    return sorted(n for n in registry.entries("models")
                  if "finetune_features" in registry.load_model_class(n).param_names())


def _feature_rows(model) -> dict[str, tuple[str, torch.Tensor, bool]]:
    """Module path of each feature-row tensor ``x{j}`` -> (its feature key, the tensor, whether a parameter)."""
    params = dict(model.module_.named_parameters())
    out = {}
    for name, t in list(params.items()) + list(model.module_.named_buffers()):
        if (hit := re.fullmatch(r"(?:(.*)\.)?x(\d+)", name)) is not None:
            owner = model.module_.get_submodule(hit[1] or "")
            out[name] = (owner.keys[int(hit[2])], t.detach().clone(), name in params)
    return out


def test_every_multimodal_model_declares_its_feature_preprocessing():
    from mmbench import registry

    for name in registry.entries("models"):
        cls = registry.load_model_class(name)
        if not (cls.requires_any or cls.requires) or name == "e2e-early-fusion":  # e2e reads raw inputs
            continue
        p = cls.params_
        assert set(p["features"].choices) == {"raw", "standard", "l2", "maxabs", "pca"} and p["features"].help, name
        assert name == "itemknn-cbf" or (p["finetune_features"].default in (True, False) and
                                         p["finetune_features"].help), name


@pytest.mark.parametrize("name", _finetunable())
def test_finetuning_learns_the_feature_rows_and_frozen_keeps_them(name, tiny):
    from mmbench.models import standardize

    spec = ModelSpec.resolve(name)
    feats = dataset_features(spec.cls, tiny, None)
    given = {"epochs": 2, "batch_size": 64, "features": "maxabs"} | ({"profile": "learned"} if name == "content-cosine"
                                                                     else {})
    for learned in (False, True):
        model = spec.cls(**spec.params(given | {"finetune_features": learned})).fit(tiny.train_data(), feats, seed=0)
        rows = _feature_rows(model)
        assert rows and all(is_param == learned for _, _, is_param in rows.values()), (name, learned)
        for path, (key, t, _) in rows.items():
            start = torch.as_tensor(standardize(feats[key].values, feats[key].mask, "maxabs"))
            assert torch.equal(t, start) != learned, (name, path)


@pytest.mark.parametrize("name", ["vbpr", "late-fusion", "attention-fusion", "early-fusion-rating"])
def test_batch_items_equal_the_tower_row_by_row_in_value_and_gradient(name, tiny):
    """``ContentRecommender.batch_items`` runs the tower once per distinct item and gathers: the
    vectors, biases and the gradients they send to every parameter equal those of the tower run
    on every row of the batch (dropout off)."""
    model = _fit(name, tiny, epochs=1, **({"dropout": 0.0} if "dropout" in ModelSpec.resolve(name).cls.params_ else {}))
    m = model.module_
    m.train()
    items = torch.tensor([3, 1, 3, 3, 0, 7, 1, 5, 7, 7])
    weights = torch.linspace(-1, 1, len(items)).unsqueeze(1)

    def grads(vectors, bias):
        m.zero_grad()
        ((vectors * weights).sum() + (0 if bias is None else (bias * weights.squeeze(1)).sum())).backward()
        return {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}

    v_rows, b_rows = m.items(items)
    v_once, b_once = model.batch_items(items)
    assert torch.allclose(v_rows, v_once, atol=1e-6)
    assert (b_rows is None) == (b_once is None) and (b_rows is None or torch.allclose(b_rows, b_once, atol=1e-6))
    g_rows, g_once = grads(*m.items(items)), grads(*model.batch_items(items))
    assert g_rows.keys() == g_once.keys() and g_rows
    for k in g_rows:
        assert torch.allclose(g_rows[k], g_once[k], atol=1e-5), k
