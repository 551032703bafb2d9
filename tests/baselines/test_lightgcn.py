"""LightGCN's propagation against a dense hand computation."""

import numpy as np
import pytest
import torch
from mmbench_baselines.lightgcn import LightGCN

from mmbench.data.dataset import TrainData


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


def test_user_and_item_tables_each_get_their_own_xavier_bound():
    # the authors' code and RecBole draw the two tables separately (docs/parity.md): U(-a, a), a = sqrt(6 / (n + d))
    from mmbench_baselines.lightgcn import _Ego

    n_users, n_items, dim = 2000, 12, 16
    torch.manual_seed(0)
    w = _Ego(n_users, n_items, dim).ego.weight.detach()
    users, items = w[:n_users], w[n_users:]
    a_user, a_item, a_joint = (np.sqrt(6 / (n + dim)) for n in (n_users, n_items, n_users + n_items))
    assert users.abs().max() <= a_user and items.abs().max() <= a_item
    assert items.abs().max() > 0.9 * a_item > 5 * a_joint  # the item part spans its own, much wider bound
    assert users.abs().max() > 0.99 * a_user
