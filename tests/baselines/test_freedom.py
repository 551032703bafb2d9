"""FREEDOM: modality weights, the renormalised item graph, projections, best-epoch restore."""

import numpy as np
import pytest
import torch
from mmbench_baselines.freedom import FREEDOM, modality_weights

from mmbench.protocol import Protocol
from mmbench.runner import validation_context

from .common import FAST


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


def test_score_reflects_restored_best_epoch(planted):
    """Scores are cached between training steps: after fit (best-epoch restore) they must be
    those of the restored parameters, i.e. the validator's best value reproduces."""
    ds, feats, _ = planted
    val = validation_context(ds, Protocol(), "ndcg@10", "cpu")
    m = FREEDOM(lr=0.05, batch_size=256, epochs=12, patience=12).fit(ds.train_data(), feats, seed=0, context=val)
    assert m.fit_info_["best_epoch"] < m.fit_info_["epochs_run"] == 12  # so a stale cache would show
    assert val.validate(m) == pytest.approx(m.fit_info_["best_valid"], abs=1e-9)
