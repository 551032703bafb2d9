"""Training: planted signal is learnt, seeds make it deterministic, divergence is caught."""
import numpy as np
import pytest
import torch

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import TrainingError
from mmbench.evaluate.ranking import evaluate_ranking
from mmbench.models.training import NegativeSampler
from mmbench.runner import run_one, validation_context
from mmbench.protocol import Protocol
from mmbench_baselines.bpr import BPR
from mmbench_baselines.mf import MF
from mmbench_baselines.pop import Pop

from .helpers import planted_rows, write_card, write_inter


@pytest.fixture
def planted(tmp_path, cards_dir):
    write_inter(tmp_path / "d" / "pl.inter", planted_rows(n_users=120, n_items=60, per_user=15, seed=3))
    write_card(cards_dir, "pl", tmp_path / "d")
    return prepare(find_card("pl"))


def test_sampler_never_returns_positives():
    user = np.repeat(np.arange(5), 8)
    item = np.tile(np.arange(8), 5)  # each user saw items 0..7 of 10
    s = NegativeSampler(user, item, 10)
    neg = s.sample(torch.as_tensor(user), torch.Generator().manual_seed(0))
    assert set(neg.tolist()) <= {8, 9}


def test_bpr_learns_planted_signal_and_beats_pop(planted):
    val = validation_context(planted, Protocol(), "ndcg@10", "cpu")
    bpr = BPR(epochs=60, lr=0.01, batch_size=256, patience=100).fit(planted.train_data(), seed=0, context=val)
    pop = Pop().fit(planted.train_data())
    m_bpr = evaluate_ranking(bpr.score, planted, "test", ["ndcg@10"]).metrics["ndcg@10"]
    m_pop = evaluate_ranking(pop.score, planted, "test", ["ndcg@10"]).metrics["ndcg@10"]
    assert m_bpr > m_pop + 0.05, (m_bpr, m_pop)
    # best-epoch restore: the restored model scores the best validation value seen
    assert val.validate(bpr) == pytest.approx(bpr.fit_info_["best_valid"], abs=1e-9)
    assert bpr.fit_info_["best_epoch"] <= bpr.fit_info_["epochs_run"]


def test_early_stopping_stops(planted):
    val = validation_context(planted, Protocol(), "ndcg@10", "cpu")
    m = BPR(epochs=500, lr=0.05, batch_size=256, patience=3).fit(planted.train_data(), seed=0, context=val)
    assert m.fit_info_["epochs_run"] < 500
    assert m.fit_info_["epochs_run"] - m.fit_info_["best_epoch"] == 3


def test_same_seed_same_scores_in_process(planted):
    a = BPR(epochs=3, batch_size=128).fit(planted.train_data(), seed=5)
    b = BPR(epochs=3, batch_size=128).fit(planted.train_data(), seed=5)
    c = BPR(epochs=3, batch_size=128).fit(planted.train_data(), seed=6)
    u = torch.arange(planted.n_users)
    assert torch.equal(a.score(u), b.score(u))
    assert not torch.equal(a.score(u), c.score(u))


def test_mf_predicts_ratings_better_than_the_mean(planted):
    val = validation_context(planted, Protocol(main_metric="rmse", metrics=("ndcg@10",)), "rmse", "cpu")
    assert not val.higher_is_better
    mf = MF(epochs=40, lr=0.02, patience=5).fit(planted.train_data(), seed=0, context=val)
    u, i, r = planted.pairs("test")
    pred = mf.predict(torch.as_tensor(u), torch.as_tensor(i)).numpy()
    rmse = float(np.sqrt(np.mean((pred - r) ** 2)))
    base = float(np.sqrt(np.mean((r - planted.train_data().rating.mean()) ** 2)))
    assert rmse < base * 0.7, (rmse, base)


def test_divergence_is_recorded_as_failed(planted, tmp_path):
    with pytest.raises(TrainingError, match="loss became"):
        run_one("bpr", planted, params={"lr": 1e30, "epochs": 5, "embedding_dim": 8}, results=tmp_path / "r")
    rec = next((tmp_path / "r").rglob("seed0.json"))
    import json

    data = json.loads(rec.read_text())
    assert data["status"] == "failed" and "loss became" in data["error"]


def test_exploding_parameters_stop_the_run(planted):
    from mmbench.models.training import fit_loop

    module = torch.nn.Linear(2, 1)
    x = torch.ones(4, 2)

    def loss_fn(_):
        loss = module(x).mean()  # finite
        with torch.no_grad():  # an update that overflows, as exploding gradients do
            module.weight.mul_(1e30).mul_(1e30)
        return loss

    with pytest.raises(TrainingError, match="'weight' became non-finite at epoch 1"):
        fit_loop(None, module, lambda ep: [0], loss_fn, epochs=3, lr=1e-3)
