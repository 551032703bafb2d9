"""The training loop's parts: early stopping, the fit context, the parameter cache."""
import math

import pytest
import torch

from mmbench.models import FitContext, ParameterCache
from mmbench.models.training import EarlyStopping, fit_loop


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
