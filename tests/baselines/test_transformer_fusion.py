"""Transformer fusion: the token mask, untrained IDs left out, both poolings, projection alignment."""

import numpy as np
import pytest
import torch
from mmbench_baselines.transformer_fusion import TransformerFusion

from mmbench.synthetic import cold_items

from .common import _fit


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_tokens_and_padding_mask(tiny, pooling):
    m = _fit("transformer-fusion", tiny, pooling=pooling, epochs=2, batch_size=128)
    keys = m.feature_keys_
    x, pad = m.module_.tokens(None)
    cls = int(pooling == "cls")  # the position of the ID token
    assert x.shape == (tiny.n_items, cls + 1 + len(keys), m.embedding_dim)
    present = np.stack([tiny.features.get(k).mask for k in keys], 1)
    trained = np.bincount(tiny.train_data().item, minlength=tiny.n_items) > 0
    nothing = ~present.any(1) & ~trained  # such an item attends to its learned missing embeddings
    assert not cls or not pad[:, 0].any()  # [CLS] is never masked
    assert np.array_equal(pad[:, cls].numpy(), ~trained)
    assert np.array_equal(pad[:, cls + 1:].numpy(), ~(present | nothing[:, None]))
    s = m.score(torch.arange(tiny.n_users))
    assert torch.isfinite(s).all() and s.std() > 0


def test_items_without_training_interactions_ignore_their_id(tiny):
    """Their ID embedding was only ever a BPR negative: it is masked like a missing modality."""
    m = _fit("transformer-fusion", tiny, epochs=2, batch_size=128)
    cold = cold_items(tiny)
    warm = np.setdiff1d(np.arange(tiny.n_items), cold)
    assert len(cold) and len(warm)
    users = torch.arange(tiny.n_users)
    before = m.score(users)
    with torch.no_grad():
        m.module_.id.weight.add_(torch.randn_like(m.module_.id.weight))
    after = m.score(users)
    assert torch.equal(after[:, cold], before[:, cold])
    assert (after[:, warm] != before[:, warm]).all(0).all()


@pytest.mark.slow
def test_alignment_ties_each_projection_to_its_item(planted):
    """InfoNCE between each modality's projection and the item's ID embedding: aligned, an
    item's text projection finds its own ID among the 120 items' far more often (measured on
    the planted data: top-5 retrieval 1.00 with weight 1 against 0.10 without; chance 0.04)."""
    ds, feats, _ = planted
    kw = dict(lr=0.01, batch_size=256, epochs=30)
    hits = {}
    for w in (0.0, 1.0):
        m = TransformerFusion(align_weight=w, **kw).fit(ds.train_data(), feats, seed=0)
        with torch.no_grad():
            z, present = m.module_.views(torch.arange(ds.n_items))
        ids, text = torch.nn.functional.normalize(z[0], dim=1), torch.nn.functional.normalize(z[2], dim=1)
        rows = torch.nonzero(present[2] & m.module_.trained).flatten()  # keys sorted: image, text
        top = torch.topk(text[rows] @ ids.T, 5, dim=1).indices
        hits[w] = float((top == rows.unsqueeze(1)).any(1).float().mean())
    assert hits[1.0] > hits[0.0] + 0.5, hits
