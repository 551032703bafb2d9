"""VBPR against the paper's formula."""
import torch

from .common import _fit


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
