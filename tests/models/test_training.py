"""The training loop and its parts: negative sampling, early stopping and best-epoch restore, the fit context and checkpoints, the parameter cache, divergence; BPR and MF learn planted signal."""
import math

import numpy as np
import pytest
import torch
from mmbench_baselines.bpr import BPR
from mmbench_baselines.mf import MF
from mmbench_baselines.pop import Pop

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import TrainingError
from mmbench.evaluate.ranking import evaluate_ranking
from mmbench.models import FitContext, ParameterCache
from mmbench.models.training import EarlyStopping, NegativeSampler, fit_loop
from mmbench.protocol import Protocol
from mmbench.runner import run_one, validation_context

from ..helpers import planted_rows, write_card, write_inter


def test_early_stopping_by_hand():
    m = torch.nn.Linear(1, 1)
    es = EarlyStopping(patience=2, higher_is_better=True)
    for epoch, v in enumerate([0.1, 0.3, 0.2, 0.3, 0.25], start=1):  # 0.3 at epoch 4 is not *better*
        es.update(epoch, v, m)
    assert (es.best_epoch, es.best_valid, es.bad_evals, es.stop) == (2, 0.3, 3, True)
    low = EarlyStopping(patience=5, higher_is_better=False)
    for epoch, v in enumerate([0.9, 0.8, 0.85], start=1):
        low.update(epoch, v, m)
    assert (low.best_epoch, low.best_valid, low.stop) == (2, 0.8, False)


def _toy_loop(values, *, patience, epochs=10, checkpoint=None, resume=False):
    """A one-parameter module whose weight is the epoch number; validation reads `values`."""
    w = torch.nn.Parameter(torch.zeros(()))
    module = torch.nn.Module()
    module.w = w

    def loss_fn(_):
        with torch.no_grad():
            w.add_(1.0)
        return torch.tensor(0.0)

    ctx = FitContext(lambda model: values[int(w.item()) - 1], checkpoint=checkpoint, checkpoint_key="k",
                     resume=resume, progress=False)
    res = fit_loop(None, module, lambda ep: [0], loss_fn, epochs=epochs, lr=0.1, patience=patience, context=ctx,
                   optimizer=None)
    return res, float(w)


def test_fit_loop_restores_the_best_epoch_and_stops_after_patience():
    res, w = _toy_loop([0.1, 0.5, 0.4, 0.3, 0.2, 0.9], patience=3)
    assert (res.best_epoch, res.epochs_run, w) == (2, 5, 2.0)  # stopped at 5, parameters of epoch 2
    assert [h["valid"] for h in res.history] == [0.1, 0.5, 0.4, 0.3, 0.2]
    res, w = _toy_loop([0.1] * 10, patience=100, epochs=4)
    assert (res.best_epoch, res.epochs_run, w) == (1, 4, 1.0)


def test_no_context_trains_the_whole_budget_and_keeps_the_last_epoch():
    w = torch.nn.Parameter(torch.zeros(()))
    module = torch.nn.Module()
    module.w = w
    res = fit_loop(None, module, lambda ep: [0], lambda _: (w - 3.0) ** 2, epochs=7, lr=0.5)
    assert (res.best_epoch, res.epochs_run, len(res.history)) == (7, 7, 7)
    assert all("valid" not in h for h in res.history)


def test_resume_from_a_checkpoint_continues_where_it_stopped(tmp_path):
    values = [0.1, 0.5, 0.4, 0.3, 0.2, 0.9]
    ref, w_ref = _toy_loop(values, patience=3)
    ckpt = tmp_path / "c.ckpt"
    _toy_loop(values, patience=3, epochs=3, checkpoint=ckpt)  # "killed" after epoch 3
    res, w = _toy_loop(values, patience=3, checkpoint=ckpt, resume=True)
    assert res.resumed_from == 3 and res.history == ref.history and w == w_ref
    other = FitContext(checkpoint=ckpt, checkpoint_key="another job", resume=True)
    assert other.checkpoint_key != "k"  # a checkpoint of another job is ignored
    from mmbench.models.training import load_checkpoint

    assert load_checkpoint(ckpt, "another job") is None and load_checkpoint(ckpt, "k")["epoch"] == 5


def test_a_resumed_run_carries_the_seconds_before_its_checkpoint(tmp_path):
    values = [0.1, 0.5, 0.4, 0.3, 0.2, 0.9]
    ckpt = tmp_path / "c.ckpt"
    from mmbench.models.training import load_checkpoint

    _toy_loop(values, patience=3, epochs=3, checkpoint=ckpt)  # "killed" after epoch 3
    before = load_checkpoint(ckpt, "k")["elapsed_s"]
    assert before > 0
    res, _ = _toy_loop(values, patience=3, checkpoint=ckpt, resume=True)
    assert res.resumed_from == 3 and res.resumed_s == before  # what the earlier process spent
    assert load_checkpoint(ckpt, "k")["elapsed_s"] > before  # and the total goes on from there
    from mmbench.models.training import save_checkpoint

    old = tmp_path / "old.ckpt"
    _toy_loop(values, patience=3, epochs=3, checkpoint=old)
    state = load_checkpoint(old, "k")
    del state["elapsed_s"]  # a checkpoint written before the field existed resumes as 0 s
    save_checkpoint(old, state)
    res, _ = _toy_loop(values, patience=3, checkpoint=old, resume=True)
    assert res.resumed_from == 3 and res.resumed_s == 0.0


def test_parameter_cache_follows_in_place_updates_and_restores():
    lin = torch.nn.Linear(3, 2)
    calls = []
    cache = ParameterCache()

    def compute():
        calls.append(1)
        return lin.weight.sum().item()

    lin.eval()
    first = cache.get(lin, compute)
    assert cache.get(lin, compute) == first and len(calls) == 1  # unchanged: not recomputed
    state = {k: v.clone() for k, v in lin.state_dict().items()}
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    lin.weight.grad = torch.ones_like(lin.weight)
    opt.step()
    assert cache.get(lin, compute) == pytest.approx(first - 6.0) and len(calls) == 2  # an optimiser step
    lin.load_state_dict(state)
    assert cache.get(lin, compute) == pytest.approx(first) and len(calls) == 3  # the best-epoch restore
    lin.train()
    cache.get(lin, compute), cache.get(lin, compute)
    assert len(calls) == 5  # training mode: never cached
    assert not math.isnan(first)


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


def _whole_batch_sampler(s: NegativeSampler, users, generator, tries=20):
    """The original algorithm: every round re-checks the whole batch."""
    neg = torch.randint(s.n_items, users.shape, generator=generator)
    for _ in range(tries):
        bad = s.is_positive(users, neg)
        if not bad.any():
            break
        neg[bad] = torch.randint(s.n_items, (int(bad.sum()),), generator=generator)
    bad = s.is_positive(users, neg)
    for k in torch.nonzero(bad).flatten().tolist():
        u = int(users[k])
        seen = set((s.keys[(s.keys >= u * s.n_items) & (s.keys < (u + 1) * s.n_items)] - u * s.n_items).tolist())
        choices = torch.tensor([i for i in range(s.n_items) if i not in seen])
        if len(choices):
            neg[k] = choices[torch.randint(len(choices), (1,), generator=generator)]
    return neg


def test_same_negatives_as_rechecking_the_whole_batch():
    rng = np.random.default_rng(0)
    n_items = 30
    rows = []
    for u in range(40):
        k = 29 if u % 10 == 0 else rng.integers(1, 20)  # every 10th user saw 29 of 30 items
        rows += [(u, i) for i in rng.permutation(n_items)[:k]]
    user, item = np.array(rows).T
    s = NegativeSampler(user, item, n_items)
    users = torch.as_tensor(np.repeat(np.arange(40), 25))
    for seed in range(5):
        a = s.sample(users, torch.Generator().manual_seed(seed), tries=3)
        b = _whole_batch_sampler(s, users, torch.Generator().manual_seed(seed), tries=3)
        assert torch.equal(a, b), seed
        assert not s.is_positive(users, a).any()


@pytest.mark.parametrize("name", ["bpr", "lightgcn", "late-fusion", "tensor-fusion"])
def test_training_without_the_nan_fill_of_new_tensors_gives_the_same_bits(name, monkeypatch):
    """Deterministic mode's NaN fill of new tensors only exposes kernels that read memory before
    writing it: the models train to the same parameters, bit for bit, with and without it."""
    import mmbench.models.training as T
    from mmbench.check import check_dataset, temporary_home
    from mmbench.runner import ModelSpec, dataset_features

    def fit():
        spec = ModelSpec.resolve(name)
        model = spec.cls(**spec.params({"epochs": 2, "batch_size": 64}))
        model.fit(ds.train_data(), dataset_features(spec.cls, ds, None), seed=0)
        return {k: v.clone() for k, v in model.module_.state_dict().items()}

    with temporary_home():
        ds = check_dataset()
        plain = fit()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        orig = T.deterministic_kernels

        def with_fill():
            orig()
            torch.utils.deterministic.fill_uninitialized_memory = True

        monkeypatch.setattr(T, "deterministic_kernels", with_fill)
        filled = fit()
    torch.utils.deterministic.fill_uninitialized_memory = False
    assert plain.keys() == filled.keys()
    assert all(torch.equal(plain[k], filled[k]) for k in plain)
