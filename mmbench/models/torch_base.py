"""Base class for torch models trained with the shared loop.

A subclass implements ``build(data, features)`` (returns an ``nn.Module``), ``loss(batch)``
and ``score_module(users)``; by default batches are BPR triples (user, positive,
uniform negative) over the training interactions, reshuffled each epoch.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from .base import Recommender
from .params import Param
from .training import FitContext, NegativeSampler, fit_loop, resolve_device, seed_everything, to_device


class TorchRecommender(Recommender):
    """A model trained by :func:`~.training.fit_loop`: Adam on mini-batches, early stopping
    on the validation metric the harness passes (``context``), best-epoch restore."""

    lr = Param(1e-3, gt=0.0, log=True, space=(2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3), help="learning rate of the optimiser")
    batch_size = Param(2048, ge=1, help="training examples per optimiser step")
    epochs = Param(200, ge=1, help="largest number of training epochs")
    patience = Param(10, ge=1, help="evaluations without a better validation value before stopping")
    eval_every = Param(1, ge=1, help="epochs between two validation evaluations")

    weight_decay: float = 0.0  # Adam's weight decay: none (models penalise their batch's embeddings)
    optimizer_kind: str | None = "adam"  # None: ``loss`` updates the parameters itself

    def build(self, data, features) -> torch.nn.Module:
        raise NotImplementedError

    def loss(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def score_module(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- batches -------------------------------------------------------------------------
    def triples(self, data, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(data)
        perm = to_device(torch.randperm(n, generator=self.generator_), self.users_t_.device)  # one copy per epoch
        for s in range(0, n, self.batch_size):
            idx = perm[s:s + self.batch_size]
            u = self.users_t_[idx]
            i = self.items_t_[idx]
            j = self.sampler_.sample(u, self.generator_)
            yield u, i, j

    def batches(self, data, epoch: int):
        return self.triples(data, epoch)

    # -- protocol ------------------------------------------------------------------------
    def fit(self, data, features=None, *, seed: int = 0, device: str = "cpu", context: FitContext | None = None):
        self.device_ = resolve_device(device)
        self.generator_ = seed_everything(seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.users_t_ = torch.as_tensor(data.user, dtype=torch.long, device=self.device_)
        self.items_t_ = torch.as_tensor(data.item, dtype=torch.long, device=self.device_)
        self.sampler_ = NegativeSampler(data.user, data.item, data.n_items, device=self.device_)
        self.module_ = self.build(data, features or {}).to(self.device_)
        result = fit_loop(self, self.module_, lambda ep: self.batches(data, ep), self.loss,
                          epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, patience=self.patience,
                          eval_every=self.eval_every, context=context, desc=type(self).__name__,
                          generator=self.generator_, optimizer=self.optimizer_kind)
        self.fit_info_ = result.as_dict()
        return self

    def score(self, users):
        users = torch.as_tensor(users, dtype=torch.long, device=self.device_)
        self.module_.eval()
        with torch.no_grad():
            return self.score_module(users)


class ParameterCache:
    """A value computed from a module's parameters and buffers (e.g. every item's vector),
    kept until one of them changes. Changes are seen through the tensors' version counters,
    which every in-place update bumps: optimiser steps, ``load_state_dict`` (the best-epoch
    restore) and ``copy_``. In training mode nothing is cached (dropout differs per call).
    A parameter changed behind torch's back (through a NumPy view) is not seen: call
    :meth:`clear` after such an update."""

    def __init__(self):
        self._key, self._value = None, None

    @staticmethod
    def version(module: torch.nn.Module) -> tuple:
        return tuple(p._version for p in module.parameters()) + tuple(b._version for b in module.buffers())

    def get(self, module: torch.nn.Module, compute: Callable[[], object]):
        if module.training:
            return compute()
        key = (id(module), self.version(module))
        if self._key != key:
            with torch.no_grad():
                self._value = compute()
            self._key = key
        return self._value

    def clear(self) -> None:
        self._key, self._value = None, None


class FastDropout(torch.nn.Module):
    """Inverted dropout whose mask costs a quarter of the random draws of ``nn.Dropout``:
    each 64-bit draw of torch's generator gives four 16-bit integers, each compared with a
    threshold, so the drop probability is ``p`` rounded to a multiple of 1/65,536 (0.1 ->
    0.100006). Same expectation and role as ``nn.Dropout``; about half its cost forward and
    backward on CPU, where drawing one float per element dominates. Seeded and checkpointed
    with the rest of torch's RNG state."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = int(round(p * 65536)) - 32768  # P(int16 < threshold) = round(p * 65536) / 65536

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - (self.threshold + 32768) / 65536))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    return -torch.nn.functional.logsigmoid(pos - neg).mean()


def l2(*tensors: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared L2 norms (RecBole's EmbLoss convention)."""
    return sum(t.pow(2).sum() for t in tensors) / tensors[0].shape[0]


def np_to_tensor(a: np.ndarray, device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), device=device)
