"""BPR-MF trained as in the paper: LearnBPR, stochastic gradient descent one triple at a time.

The per-triple loop is compiled with numba, imported only when the model is fitted (the
first call on a machine compiles for a few seconds; the result is cached on disk, in
``NUMBA_CACHE_DIR`` when set).
"""
from __future__ import annotations

import numpy as np
import torch

from mmbench.errors import ConfigError
from mmbench.models import Param, TorchRecommender

from .bpr import _MF

_KERNEL = None


def _kernel():
    """The compiled epoch (built once per process; numba is imported only here)."""
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba
        except ImportError:
            raise ConfigError("bpr-sgd needs numba", where="model bpr-sgd",
                              hint="pip install numba (a dependency of mmbench), or use bpr") from None
        kernel = numba.njit(cache=True, nogil=True)(_learn_bpr_epoch)
        # Compile it, or load it from numba's cache (0.4 s here), now: else the first epoch pays
        # for it, and `seconds_per_epoch` with it (+13 ms per epoch over ml-100k's 31 epochs).
        # The call is on two throwaway users with the argument types of `loss`; each epoch seeds
        # its own random stream, so it changes nothing that follows.
        pairs = np.array([0, 1], dtype=np.int64)
        kernel(np.zeros((2, 8), np.float32), np.zeros((3, 8), np.float32), pairs, pairs,
               np.array([0, 1, 2], dtype=np.int64), pairs, np.float32(0.05), np.float32(0.01), 0)
        _KERNEL = kernel
    return _KERNEL


def _learn_bpr_epoch(P, Q, users, items, indptr, indices, lr, reg, seed):  # pragma: no cover - compiled
    """One pass over the training pairs in a random order; for each (u, i) a uniform
    negative j that u has not seen, then the LearnBPR update of P[u], Q[i], Q[j].
    Sequential and seeded: the same seed gives the same parameters. The dot product sums
    eight interleaved partial sums in a fixed order (the compiler can vectorise it without
    reassociating, so the result does not depend on the CPU's vector width). Returns the
    summed BPR loss -log sigmoid(x_uij) before each update."""
    np.random.seed(seed)
    n, n_items, dim = users.shape[0], Q.shape[0], P.shape[1]
    order = np.random.permutation(n)
    total = 0.0  # float64; the factors and the update stay in float32
    one = np.float32(1.0)
    acc = np.zeros(8, dtype=np.float32)
    main = dim - dim % 8
    for t in range(n):
        s = order[t]
        u, i = users[s], items[s]
        lo, hi = indptr[u], indptr[u + 1]
        if hi - lo >= n_items:
            continue  # the user saw every item: no negative exists
        while True:  # rejection: the user's items are sorted, found by binary search
            j = np.random.randint(0, n_items)
            a, b = lo, hi
            while a < b:
                m = (a + b) // 2
                if indices[m] < j:
                    a = m + 1
                else:
                    b = m
            if a == hi or indices[a] != j:
                break
        pu_, qi_, qj_ = P[u], Q[i], Q[j]
        for lane in range(8):
            acc[lane] = 0
        for f0 in range(0, main, 8):
            for lane in range(8):
                acc[lane] += pu_[f0 + lane] * (qi_[f0 + lane] - qj_[f0 + lane])
        x = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        for f in range(main, dim):
            x += pu_[f] * (qi_[f] - qj_[f])
        # z = sigmoid(-x) = d(-log sigmoid(x))/d(-x); the loss, computed stably
        if x >= 0:
            e = np.exp(-x)
            z = e / (one + e)
            total += np.log1p(e)
        else:
            e = np.exp(x)
            z = one / (one + e)
            total += -x + np.log1p(e)
        for f in range(dim):
            pu, qi, qj = pu_[f], qi_[f], qj_[f]
            pu_[f] = pu + lr * (z * (qi - qj) - reg * pu)
            qi_[f] = qi + lr * (z * pu - reg * qi)
            qj_[f] = qj + lr * (-z * pu - reg * qj)
    return total


class BPRSGD(TorchRecommender, lr=0.05):
    """BPR-MF learned with LearnBPR (Rendle et al., "BPR: Bayesian Personalized Ranking
    from Implicit Feedback", UAI 2009, Algorithm 1): stochastic gradient descent on one
    (user, positive, uniform negative) triple at a time, with L2 regularisation ``reg`` on
    the three rows it touches. The same model (and scoring) as ``bpr``; only the learning
    differs (``bpr`` uses Adam on mini-batches, which suits GPUs and large batches; this
    touches three rows per triple, which is what a CPU does fastest).

    Each epoch visits every training pair once in a seeded random order (the paper draws
    with replacement); negatives are drawn uniformly among the items the user has not seen.
    Defaults: 64-d factors, xavier-normal initialisation as ``bpr``, lr 0.05, reg 0.01 (the
    values Cornac uses for this algorithm; the paper tunes both per dataset), early stopping
    on the validation metric. CPU only (a sequential compiled loop): ``--device cuda`` is an
    error; use ``bpr`` there. Needs no modality.
    """

    paper = "Rendle et al., UAI 2009 (LearnBPR)"
    optimizer_kind = None  # the compiled loop updates the parameters itself
    batch_size = 0  # not a parameter: one "batch" per epoch, the compiled pass over every pair
    embedding_dim = Param(64, ge=1, help="size of the user and item factors")
    reg = Param(0.01, ge=0.0, space=(0.001, 0.01, 0.1), help="L2 weight on the three rows each update touches")

    def fit(self, data, features=None, *, seed: int = 0, device: str = "cpu", context=None):
        # a sequential CPU loop: "auto" means the CPU here, whatever accelerator exists
        return super().fit(data, features, seed=seed, device="cpu" if device == "auto" else device,
                           context=context)

    def build(self, data, features):
        if torch.device(self.device_).type != "cpu":
            raise ConfigError(f"bpr-sgd runs on the CPU only (asked for {self.device_})", where="model bpr-sgd",
                              hint="use --device cpu, or the model bpr (Adam mini-batches) on a GPU")
        self.kernel_ = _kernel()
        indptr, indices = data.csr
        self.pairs_ = (np.ascontiguousarray(data.user, dtype=np.int64), np.ascontiguousarray(data.item, dtype=np.int64),
                       np.ascontiguousarray(indptr, dtype=np.int64), np.ascontiguousarray(indices, dtype=np.int64))
        return _MF(data.n_users, data.n_items, self.embedding_dim)

    def batches(self, data, epoch):
        # the epoch's seed comes from the model's generator: checkpoints restore it exactly
        yield int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator_))

    def loss(self, seed):
        m = self.module_
        with torch.no_grad():
            P, Q = m.user.weight.detach().numpy(), m.item.weight.detach().numpy()  # views, updated in place
            total = self.kernel_(P, Q, *self.pairs_, np.float32(self.lr), np.float32(self.reg), seed)
        return torch.tensor(total / max(len(self.pairs_[0]), 1))

    def score_module(self, users):
        m = self.module_
        return m.user(users) @ m.item.weight.T
