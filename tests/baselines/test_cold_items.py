"""How ID-only models rank items without training interactions (the rule the cold-start
boards and ``models info`` state): Pop puts every such item below every warm one, in item
order; BPR-MF only ever sees them as sampled negatives, so training pushes them down."""
import numpy as np
import pytest
import torch

from mmbench.check import temporary_home
from mmbench.runner import ModelSpec
from mmbench.synthetic import make_synthetic


@pytest.fixture(scope="module")
def synth():
    with temporary_home():
        ds = make_synthetic(n_users=60, n_items=80, per_user=10, seed=4)
        cold = np.bincount(ds.pairs("train")[1], minlength=ds.n_items) == 0
        assert cold.sum() >= 10
        yield ds, cold


def _scores(name, ds, **params):
    spec = ModelSpec.resolve(name)
    model = spec.cls(**spec.params(params)).fit(ds.train_data(), {}, seed=0)
    return model.score(torch.arange(ds.n_users)).numpy()


def test_pop_ranks_cold_items_below_every_warm_item_in_item_order(synth):
    ds, cold = synth
    s = _scores("pop", ds)
    assert (s[:, cold] == 0).all() and (s[:, ~cold] > 0).all()
    order = np.lexsort((np.arange(ds.n_items), -s[0]))  # score desc, item index asc: the evaluator's order
    assert order[-cold.sum():].tolist() == np.flatnonzero(cold).tolist()


def test_bpr_pushes_cold_items_down_as_negatives(synth):
    ds, cold = synth
    ranks = {}
    for epochs in (1, 20):
        s = _scores("bpr", ds, epochs=epochs, lr=0.01, batch_size=256)
        r = (-s).argsort(1).argsort(1)  # 0 = top
        ranks[epochs] = (r[:, cold].mean(), r[:, ~cold].mean())
    # after one epoch the cold rows are near their random start; training moves them down
    assert ranks[20][0] > ranks[1][0] + 5
    assert ranks[20][0] > ranks[20][1] + 10
