"""The peer driver applies our early-stopping rule exactly as our training loop does."""
import pytest
import torch

from mmbench.models.training import FitContext, fit_loop
from mmbench.parity.driver import EpochJudge, budget

CURVE = [0.10, 0.30, 0.20, 0.25, 0.35, 0.34, 0.33, 0.32, 0.31, 0.30]


class Scripted:
    """A peer whose state is the epoch it reached; validation reads a fixed curve."""

    def __init__(self):
        self.epoch = 0

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = state["epoch"]


def drive(epochs, patience, eval_every):
    model = Scripted()
    judge = EpochJudge(model, FitContext(lambda m: CURVE[m.epoch - 1]), epochs, patience, eval_every)
    for epoch in range(1, epochs + 1):
        model.epoch = epoch
        if judge.epoch_end(epoch, loss=1.0 / epoch):
            break
    return model, judge.finish()


def ours(epochs, patience, eval_every):
    """The same curve through our own training loop (fit_loop) on a dummy module."""
    module = torch.nn.Linear(1, 1)
    state = {"epoch": 0}

    def on_epoch_end(epoch):
        state["epoch"] = epoch

    res = fit_loop(None, module, lambda ep: [0], lambda b: (module.weight ** 2).sum(), epochs=epochs, lr=0.1,
                   patience=patience, eval_every=eval_every, on_epoch_end=on_epoch_end,
                   context=FitContext(lambda m: CURVE[state["epoch"] - 1], progress=False))
    return res


@pytest.mark.parametrize("epochs,patience,eval_every", [(10, 2, 1), (10, 3, 1), (7, 10, 2), (10, 1, 3), (4, 2, 1)])
def test_the_judge_stops_where_our_training_loop_stops(epochs, patience, eval_every):
    model, fit = drive(epochs, patience, eval_every)
    res = ours(epochs, patience, eval_every)
    assert (fit["best_epoch"], fit["epochs_run"], fit["best_valid"]) == (res.best_epoch, res.epochs_run,
                                                                         res.best_valid)
    assert [h.get("valid") for h in fit["history"]] == [h.get("valid") for h in res.history]
    assert model.epoch == fit["best_epoch"]  # the best epoch's state is restored


def test_patience_two_by_hand():
    model, fit = drive(10, 2, 1)
    # 0.10, 0.30 (best), 0.20, 0.25 (two without improvement): stop after epoch 4, keep epoch 2
    assert (fit["best_epoch"], fit["epochs_run"], model.epoch) == (2, 4, 2)
    assert fit["history"][0] == {"epoch": 1, "loss": 1.0, "valid": 0.1}


def test_a_model_without_epochs_gets_one():
    assert budget({}) == (1, 1, 1)
    assert budget({"epochs": 200, "patience": 50, "eval_every": 2, "lr": 1e-3}) == (200, 50, 2)
