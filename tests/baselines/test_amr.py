"""AMR's adversarial perturbation."""
import torch
from mmbench_baselines.amr import AMR

from .common import FAST


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
