"""Helpers shared by the baseline tests: fitting a registered model, tiny features, the planted data's constants."""

import numpy as np
from mmbench_baselines.adversarial import AdversarialAlignment
from mmbench_baselines.amr import AMR
from mmbench_baselines.bm3 import BM3
from mmbench_baselines.freedom import FREEDOM
from mmbench_baselines.subspace_alignment import SubspaceAlignment
from mmbench_baselines.transformer_fusion import TransformerFusion

from mmbench.evaluate.ranking import evaluate_ranking
from mmbench.features.store import Feature
from mmbench.protocol import Protocol
from mmbench.runner import ModelSpec, dataset_features, validation_context
from mmbench.synthetic import add_raw_inputs

CONTENT_MODELS = ["itemknn-cbf", "content-cosine", "vbpr", "early-fusion", "late-fusion", "hybrid-fusion",
                  "attention-fusion", "tensor-fusion", "transformer-fusion", "subspace-alignment"]


RATING_MODELS = ["vbpr-rating", "early-fusion-rating", "attention-fusion-rating"]


def _fit(name, ds, features=None, seed=0, **params):
    spec = ModelSpec.resolve(name)
    feats = dataset_features(spec.cls, ds, None) if features is None else features
    return spec.cls(**spec.params(params)).fit(ds.train_data(), feats, seed=seed)


def _feature(key, values, mask):
    values = np.asarray(values, dtype=np.float32)
    return Feature(key, values, np.asarray(mask, dtype=bool), "test", {})


def _train(name, ds, **params):
    spec = ModelSpec.resolve(name)
    given = {"lr": 0.01, "batch_size": 256, "epochs": 60, "patience": 8, **params}
    params = spec.params({k: v for k, v in given.items() if k in spec.cls.param_names()})
    val = validation_context(ds, Protocol(), "ndcg@20", "cpu")
    return spec.cls(**params).fit(ds.train_data(), dataset_features(spec.cls, ds, None), seed=0, context=val)


# -- attention fusion ----------------------------------------------------------------------------
def _masked_features(ds):
    """The dataset's vector features (text, image, audio; not raw inputs), with two items masked."""
    out = {}
    for k in ds.features.keys():
        if k.split("/")[0] not in ("text", "image", "audio"):
            continue
        f = ds.features.get(k)
        mask = f.mask.copy()
        mask[0] = False  # item 0: every modality missing
        mask[1] = k.startswith("text/")  # item 1: only text
        out[k] = _feature(k, np.where(mask[:, None], f.values, 0.0), mask)
    return out


N_USERS, N_ITEMS, PER_USER, SEED, DIM = 200, 120, 10, 3, 4


FAST = dict(epochs=3, batch_size=256)


MULTIMODAL = {
    "freedom": lambda **kw: FREEDOM(**kw),
    "bm3": lambda **kw: BM3(**kw),
    "amr": lambda **kw: AMR(**kw),
    "adversarial-alignment": lambda **kw: AdversarialAlignment(**kw),
    "transformer-fusion": lambda **kw: TransformerFusion(**kw),
    "subspace-alignment": lambda **kw: SubspaceAlignment(**kw),
}


def ndcg(model, ds, split="test", metric="ndcg@10"):
    return evaluate_ranking(model.score, ds, split, [metric]).metrics[metric]


def fit(model, ds, feats=None, seed=0):
    return model.fit(ds.train_data(), feats or {}, seed=seed, context=validation_context(ds, Protocol(), "ndcg@10", "cpu"))


# -- raw inputs (end-to-end models) -----------------------------------------------------------------
raw_features = add_raw_inputs  # the synthetic data's raw inputs (tokens, pixels) for e2e models


def check_drop_modality(model, ds, key, items) -> None:
    """``model.drop_modality(key, items)``: only the scores of ``items`` that have ``key``
    change (every one of them), the rest stay bit for bit, and leaving restores the model."""
    import torch

    users = torch.arange(ds.n_users)
    before = model.score(users)
    with model.drop_modality(key, items):
        during = model.score(users)
    assert torch.equal(model.score(users), before)
    had = np.zeros(ds.n_items, bool)
    had[items] = ds.features.get(key).mask[items]
    assert torch.equal(during[:, ~had], before[:, ~had])
    assert had.any() and (during[:, had] != before[:, had]).any(0).all()
