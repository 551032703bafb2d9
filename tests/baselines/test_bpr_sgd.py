"""bpr-sgd: LearnBPR (per-triple SGD, compiled with numba) — the update by hand, negatives,
determinism, exact resume, and that it learns as well as the Adam-trained bpr."""
import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from mmbench_baselines.bpr_sgd import BPRSGD, _kernel  # noqa: E402


def _one_step(P, Q, u, i, j, lr, reg):
    """The LearnBPR update of Rendle et al. (Algorithm 1) for one triple, in float64."""
    P, Q = P.astype(np.float64), Q.astype(np.float64)
    x = P[u] @ (Q[i] - Q[j])
    z = 1.0 / (1.0 + np.exp(x))
    pu, qi, qj = P[u].copy(), Q[i].copy(), Q[j].copy()
    P[u] = pu + lr * (z * (qi - qj) - reg * pu)
    Q[i] = qi + lr * (z * pu - reg * qi)
    Q[j] = qj + lr * (-z * pu - reg * qj)
    return P, Q, np.log1p(np.exp(-x))


def test_update_equals_the_papers_rule_and_the_negative_is_never_seen():
    # user 0 saw items 0, 1, 3 of 5 and user 1 saw 2: with one pair per epoch, the negative
    # of (0, 1) must be 2 or 4; the rows of 0 and 3 (seen, not the positive) must not move
    rng = np.random.default_rng(0)
    P0 = rng.normal(size=(2, 12)).astype(np.float32)  # 12 = one 8-lane block + 4 left over
    Q0 = rng.normal(size=(5, 12)).astype(np.float32)
    indptr = np.array([0, 3, 4], np.int64)
    indices = np.array([0, 1, 3, 2], np.int64)
    users, items = np.array([0], np.int64), np.array([1], np.int64)
    kern = _kernel()
    seen_negatives = set()
    for seed in range(20):
        P, Q = P0.copy(), Q0.copy()
        loss = kern(P, Q, users, items, indptr, indices, np.float32(0.1), np.float32(0.01), seed)
        moved = [j for j in range(5) if not np.array_equal(Q[j], Q0[j])]
        assert 1 in moved and 0 not in moved and 3 not in moved and len(moved) == 2
        j = moved[1] if moved[0] == 1 else moved[0]
        seen_negatives.add(j)
        wantP, wantQ, want_loss = _one_step(P0, Q0, 0, 1, j, 0.1, 0.01)
        np.testing.assert_allclose(P, wantP, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(Q, wantQ, rtol=1e-5, atol=1e-6)
        assert loss == pytest.approx(want_loss, rel=1e-5)
        assert np.array_equal(P[1], P0[1])  # user 1 untouched
    assert seen_negatives == {2, 4}  # both unseen items get drawn, nothing else


def test_a_user_who_saw_everything_is_skipped():
    P0, Q0 = np.ones((1, 8), np.float32), np.ones((2, 8), np.float32)
    P, Q = P0.copy(), Q0.copy()
    loss = _kernel()(P, Q, np.array([0, 0], np.int64), np.array([0, 1], np.int64), np.array([0, 2], np.int64),
                     np.array([0, 1], np.int64), np.float32(0.1), np.float32(0.0), 0)
    assert loss == 0.0 and np.array_equal(P, P0) and np.array_equal(Q, Q0)


@pytest.fixture(scope="module")
def ml100k():
    from mmbench.data.cards import find_card
    from mmbench.data.prepare import prepare

    return prepare(find_card("ml-100k"))


class _Valid:
    """Validation NDCG@10 (what the harness's context computes), optionally failing at one call."""

    def __init__(self, ds, fail_at=None):
        self.ds, self.fail_at, self.calls = ds, fail_at, 0

    def __call__(self, model):
        from mmbench.evaluate.ranking import evaluate_ranking

        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return evaluate_ranking(model.score, self.ds, "valid", ["ndcg@10"], beyond_accuracy=False).metrics["ndcg@10"]


def _context(ds, fail_at=None, checkpoint=None, resume=False):
    from mmbench.models import FitContext

    return FitContext(_Valid(ds, fail_at), checkpoint=checkpoint, checkpoint_key="k", resume=resume)


def test_deterministic_resumable_and_as_good_as_adam_bpr(ml100k, tmp_path):
    from mmbench.evaluate.ranking import evaluate_ranking
    from mmbench_baselines.bpr import BPR
    from mmbench_baselines.pop import Pop

    data = ml100k.train_data()
    users = torch.arange(ml100k.n_users)
    ref = BPRSGD(epochs=8, patience=100).fit(data, seed=3, context=_context(ml100k))
    # the same seed and validator: identical parameters, history and scores
    twin = BPRSGD(epochs=8, patience=100).fit(data, seed=3, context=_context(ml100k))
    assert twin.fit_info_["history"] == ref.fit_info_["history"]
    assert torch.equal(twin.score(users), ref.score(users))
    other = BPRSGD(epochs=8, patience=100).fit(data, seed=4, context=_context(ml100k))
    assert not torch.equal(other.score(users), ref.score(users))

    # killed during epoch 5's validation, resumed from the epoch-4 checkpoint: the same run
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        BPRSGD(epochs=8, patience=100).fit(data, seed=3, context=_context(ml100k, fail_at=5, checkpoint=ckpt))
    resumed = BPRSGD(epochs=8, patience=100).fit(data, seed=3,
                                                 context=_context(ml100k, checkpoint=ckpt, resume=True))
    assert resumed.fit_info_["resumed_from"] == 4
    assert resumed.fit_info_["history"] == ref.fit_info_["history"]
    assert torch.equal(resumed.score(users), ref.score(users))

    # it learns: far above popularity, and level with Adam-trained bpr after a few epochs
    def ndcg(m):
        return evaluate_ranking(m.score, ml100k, "valid", ["ndcg@10"], beyond_accuracy=False).metrics["ndcg@10"]

    pop = ndcg(Pop().fit(data, seed=0))
    adam = ndcg(BPR(batch_size=16384, lr=0.02, epochs=8, patience=100).fit(data, seed=3, context=_context(ml100k)))
    assert ref.fit_info_["best_valid"] > pop + 0.05
    assert ref.fit_info_["best_valid"] > adam - 0.01, (ref.fit_info_["best_valid"], adam)


def test_cuda_is_a_clear_error(ml100k):
    from mmbench.errors import ConfigError

    model = BPRSGD(epochs=1)
    model.device_ = "cuda"
    with pytest.raises(ConfigError, match="CPU only"):
        model.build(ml100k.train_data(), {})
