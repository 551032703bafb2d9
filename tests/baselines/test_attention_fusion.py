"""Attention fusion: per-item weights, missing rows."""

import numpy as np
import pytest
import torch

from .common import _fit, _masked_features


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
