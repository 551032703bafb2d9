"""VBPR against the paper's formula."""
import numpy as np
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


# -- the paper's VBPR against MMRec's (src/models/vbpr.py, configs VBPR.yaml and overall.yaml) --------
def _np(t):
    return t.detach().double().numpy()


def _penalty(m, u, i, j):
    """What ``reg`` weighs in the training loss of a batch: the loss at reg = 1 minus the loss at reg = 0."""
    batch = (torch.tensor(u), torch.tensor(i), torch.tensor(j))
    reg, out = m.reg, []
    with torch.no_grad():
        for m.reg in (1.0, 0.0):
            out.append(m.loss(batch).double().item())
    m.reg = reg
    return out[0] - out[1]


def test_vbpr_mmrec_is_mmrecs_model_on_the_raw_features(tiny):
    m = _fit("vbpr-mmrec", tiny, epochs=2, batch_size=64)
    mod = m.module_
    feats = {k: tiny.features.get(k) for k in m.feature_keys_}
    assert m.features == "raw" and not m.finetune_features and m.reg == 1e-2
    assert mod.user.weight.shape[1] == 128 and mod.id.weight.shape[1] == 64 and not hasattr(mod, "beta_item")

    def item(i):  # [q_i ; sum over keys of W_k f_i + b_k] on the stored values, or the key's missing vector
        parts = []
        for j, k in enumerate(sorted(feats)):
            lin = mod.proj.proj[j][-1]
            f = feats[k]
            parts.append(f.values[i].astype(np.float64) @ _np(lin.weight).T + _np(lin.bias) if f.mask[i]
                         else _np(mod.proj.missing[j]))
        return np.concatenate([_np(mod.id.weight[i]), np.sum(parts, 0)])

    u, i, j = [0, 3, 5], [1, 7, 2], [4, 0, 9]
    got = m.score(torch.tensor(u)).double().numpy()
    for a, uu in enumerate(u):
        for ii in (i[a], j[a]):
            assert np.isclose(got[a, ii], _np(mod.user.weight[uu]) @ item(ii), atol=1e-4)
    # the L2 term: MMRec's EmbLoss, Frobenius norms (not squared) of the batch's vectors as scored, / batch
    vi, vj, eu = np.stack([item(x) for x in i]), np.stack([item(x) for x in j]), _np(mod.user.weight[u])
    expected = (np.linalg.norm(eu) + np.linalg.norm(vi) + np.linalg.norm(vj)) / len(u)
    assert np.isclose(_penalty(m, u, i, j), expected, rtol=1e-4)


def test_the_papers_vbpr_penalises_id_factors_and_biases_only(tiny):
    m = _fit("vbpr", tiny, epochs=2, batch_size=64)
    mod = m.module_
    assert m.features == "raw" and not m.finetune_features
    u, i, j = [0, 3, 5], [1, 7, 2], [4, 0, 9]
    squares = sum((_np(t) ** 2).sum() for t in (mod.gamma_user.weight[u], mod.theta_user.weight[u],
                                                mod.gamma_item.weight[i], mod.gamma_item.weight[j],
                                                mod.beta_item.weight[i], mod.beta_item.weight[j]))
    assert np.isclose(_penalty(m, u, i, j), squares / len(u), rtol=1e-4)  # squared, no content: lambda_E = 0
    assert mod.proj.x0.shape[1] == tiny.features.get(m.feature_keys_[0]).values.shape[1]
    f = tiny.features.get(m.feature_keys_[0])
    assert np.array_equal(mod.proj.x0.numpy()[f.mask], f.values[f.mask])  # raw, as the paper
