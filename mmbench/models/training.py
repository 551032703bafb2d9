"""The shared training loop, in parts: seeding and devices, negative sampling, the fit
context the harness passes, early stopping, checkpoints, and :func:`fit_loop` that joins
them (one epoch at a time: batches -> loss -> step, divergence checks, validation)."""
from __future__ import annotations

import copy
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..errors import MMBenchError, TrainingError


# -- seeding and devices ------------------------------------------------------------------------
def deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without importing the
    compiler stack when nothing compiled yet: that function also sets inductor's flag and
    its import costs about as much as importing torch (~1-2 s per process).

    Deterministic mode also fills every new tensor with NaN
    (``torch.utils.deterministic.fill_uninitialized_memory``), only to expose kernels that
    read memory before writing it; no kernel the models use does (a model's trained bits are
    the same without the fill: ``tests/models/test_training.py``), and the fill is one
    extra pass over every allocation: 8-16% of a training step here. It is turned off."""
    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG and ask torch for deterministic kernels; returns a CPU generator."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    deterministic_kernels()
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MMBenchError(f"device {device!r} requested but CUDA is not available", hint="use --device cpu or auto")
    return device


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """Host tensor -> ``device``; to CUDA through pinned memory without blocking the host."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class NegativeSampler:
    """Uniform negatives excluding each user's training positives (vectorised rejection)."""

    def __init__(self, user: np.ndarray, item: np.ndarray, n_items: int, device="cpu"):
        self.n_items = n_items
        self.device = device
        keys = np.unique(user.astype(np.int64) * n_items + item.astype(np.int64))
        self.keys = torch.as_tensor(keys, device=device)

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        q = users * self.n_items + items
        pos = torch.searchsorted(self.keys, q).clamp(max=len(self.keys) - 1)
        return self.keys[pos] == q

    def sample(self, users: torch.Tensor, generator: torch.Generator, tries: int = 20) -> torch.Tensor:
        # Draws come from the CPU generator (the same negatives on every device). Only the
        # redrawn positions are checked again: the same draws, in the same order, as
        # re-checking the whole batch, for a fraction of the binary searches.
        neg = to_device(torch.randint(self.n_items, users.shape, generator=generator), users.device)
        todo = torch.nonzero(self.is_positive(users, neg)).flatten()
        for _ in range(tries):
            if todo.numel() == 0:
                break
            redraw = to_device(torch.randint(self.n_items, (todo.numel(),), generator=generator), users.device)
            neg[todo] = redraw
            todo = todo[self.is_positive(users[todo], redraw)]
        for k in todo.tolist():  # users who saw most items: draw exactly from their complement
            self._draw_exact(neg, k, int(users[k]), generator)
        return neg

    def _draw_exact(self, neg: torch.Tensor, k: int, u: int, generator: torch.Generator) -> None:
        lo = int(torch.searchsorted(self.keys, torch.tensor(u * self.n_items, device=self.keys.device)))
        hi = int(torch.searchsorted(self.keys, torch.tensor((u + 1) * self.n_items, device=self.keys.device)))
        free = torch.ones(self.n_items, dtype=torch.bool)
        free[(self.keys[lo:hi] - u * self.n_items).cpu()] = False
        choices = torch.nonzero(free).flatten()
        if len(choices):  # else the user saw every item: no negative exists
            neg[k] = choices[torch.randint(len(choices), (1,), generator=generator)].to(neg.device)


# -- what the harness passes, what the loop returns ----------------------------------------------
@dataclass
class FitContext:
    """What the harness gives a model's ``fit`` besides the data: how to score the model on
    validation for early stopping (the model never sees labels), in which direction, and
    where the loop keeps its checkpoint. A model fitted without a context trains for its
    full budget and keeps its last epoch.

    ``checkpoint``: the loop saves its whole state there after every epoch (atomically);
    with ``resume`` it continues from that file and ends with the same numbers as an
    uninterrupted run. ``checkpoint_key`` names the job: a checkpoint of another job is
    ignored."""

    validate: Callable[[object], float] | None = None
    higher_is_better: bool = True
    checkpoint: Path | None = None
    checkpoint_key: str = ""
    resume: bool = False
    progress: bool = True


@dataclass
class FitResult:
    best_epoch: int = 0
    epochs_run: int = 0
    best_valid: float | None = None
    history: list = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    resumed_from: int | None = None
    resumed_s: float = 0.0  # the loop's seconds before the checkpoint it resumed from (earlier processes)

    def as_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "epochs_run": self.epochs_run, "best_valid": self.best_valid,
                "seconds_per_epoch": round(self.seconds_per_epoch, 6), "resumed_from": self.resumed_from,
                "resumed_s": round(self.resumed_s, 3), "history": self.history}


class EarlyStopping:
    """The best validation value so far, its epoch and a copy of the parameters then; stop
    after ``patience`` evaluations without improvement."""

    def __init__(self, patience: int, higher_is_better: bool = True):
        self.patience = patience
        self.sign = 1.0 if higher_is_better else -1.0
        self.best = -math.inf
        self.bad_evals = 0
        self.best_epoch, self.best_valid, self.best_state = 0, None, None

    def update(self, epoch: int, value: float, module: torch.nn.Module) -> None:
        if self.sign * value > self.best:
            self.best = self.sign * value
            self.best_epoch, self.best_valid = epoch, value
            self.best_state = copy.deepcopy(module.state_dict())
            self.bad_evals = 0
        else:
            self.bad_evals += 1

    @property
    def stop(self) -> bool:
        return self.bad_evals >= self.patience

    def state(self) -> dict:
        return {"best_state": self.best_state or {}, "best": self.best, "bad_evals": self.bad_evals,
                "best_epoch": self.best_epoch, "best_valid": self.best_valid}

    def load(self, state: dict) -> None:
        self.best_state = state["best_state"] or None
        self.best, self.bad_evals = state["best"], state["bad_evals"]
        self.best_epoch, self.best_valid = state["best_epoch"], state["best_valid"]


# -- one epoch ------------------------------------------------------------------------------------
def _diverged(loss: torch.Tensor, epoch: int, batch: int) -> TrainingError:
    return TrainingError(f"loss became {loss.item()} at epoch {epoch}, batch {batch}",
                         hint="lower lr or raise regularisation")


def train_epoch(module: torch.nn.Module, batches: Iterable, loss_fn: Callable, opt, epoch: int,
                max_grad_norm: float | None = None) -> float:
    """One pass over ``batches``: loss, backward and step (``opt=None``: the loss function
    updated the parameters itself). A non-finite loss, gradient norm or parameter stops the
    run; on an accelerator the loss check waits for the epoch's end (no sync per batch).
    Returns the mean loss."""
    module.train()
    total, n, pending = 0.0, 0, []
    for b, batch in enumerate(batches):
        loss = loss_fn(batch)
        if loss.device.type == "cpu":
            if not torch.isfinite(loss):
                raise _diverged(loss, epoch, b)
        else:
            pending.append(loss.detach())
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
                if not torch.isfinite(norm):
                    raise TrainingError(f"gradient norm became {norm.item()} at epoch {epoch}, batch {b}",
                                        hint="lower lr")
            opt.step()
        total += loss.detach()
        n += 1
    if pending:
        finite = torch.isfinite(torch.stack(pending))
        if not bool(finite.all()):
            b = int((~finite).nonzero()[0])
            raise _diverged(pending[b], epoch, b)
    for name, p in module.named_parameters():
        if not torch.isfinite(p).all():
            raise TrainingError(f"parameter {name!r} became non-finite at epoch {epoch} (exploding gradients)",
                                hint="lower lr, raise regularisation or set max_grad_norm")
    return float(total / max(n, 1))


def make_optimizer(kind: str | None, module: torch.nn.Module, lr: float, weight_decay: float):
    """Adam (``foreach``: the same arithmetic, bit for bit, as the per-tensor loop in fewer
    passes over the parameters, ~1.8x faster steps on CPU), or None for a solver that
    updates the parameters itself."""
    if kind not in ("adam", None):
        raise ValueError(f"optimizer must be 'adam' or None, not {kind!r}")
    if kind is None:
        return None
    return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)


# -- checkpoints ----------------------------------------------------------------------------------
@dataclass
class LoopState:
    """Everything an epoch boundary needs to continue bit for bit."""

    module: torch.nn.Module
    opt: object
    early: EarlyStopping
    result: FitResult
    generator: torch.Generator | None

    def save(self, path: Path, key: str, epoch: int, stopped: bool, elapsed_s: float = 0.0) -> None:
        save_checkpoint(path, {
            "key": key, "epoch": epoch, "stopped": stopped, "elapsed_s": elapsed_s, "module": self.module.state_dict(),
            "optim": self.opt.state_dict() if self.opt is not None else {}, **self.early.state(),
            "history": self.result.history, "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state() if self.generator is not None else torch.ByteTensor(),
        })

    def restore(self, state: dict) -> int:
        """Load a checkpoint; returns the first epoch still to run."""
        self.module.load_state_dict(state["module"])
        if self.opt is not None:
            self.opt.load_state_dict(state["optim"])
        self.early.load(state)
        self.result.best_epoch, self.result.best_valid = state["best_epoch"], state["best_valid"]
        self.result.history = list(state["history"])
        self.result.resumed_from = state["epoch"]
        self.result.resumed_s = float(state.get("elapsed_s", 0.0))  # 0 for a checkpoint written before it was kept
        torch.set_rng_state(state["torch_rng"])
        if self.generator is not None:
            self.generator.set_state(state["generator"])
        return math.inf if state["stopped"] else state["epoch"] + 1


def save_checkpoint(path, state: dict) -> None:
    import io as _io

    from ..io import atomic_write_bytes

    buf = _io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path, key: str) -> dict | None:
    """A checkpoint of the same job (same key), or None. Loaded weights-only: never unpickles code."""
    if not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a corrupt checkpoint is ignored, never trusted
        import warnings

        warnings.warn(f"{path}: unreadable checkpoint ignored ({type(e).__name__}); training starts over")
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        return None
    return state


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, disable=None, dynamic_ncols=True)
    except ImportError:  # pragma: no cover
        return None


# -- the loop -------------------------------------------------------------------------------------
def fit_loop(model, module: torch.nn.Module, batches: Callable[[int], Iterable],
             loss_fn: Callable[[object], torch.Tensor], *, epochs: int, lr: float, weight_decay: float = 0.0,
             patience: int = 10, eval_every: int = 1, context: FitContext | None = None,
             max_grad_norm: float | None = None, desc: str = "train",
             on_epoch_end: Callable[[int], None] | None = None, generator: torch.Generator | None = None,
             optimizer: str | None = "adam") -> FitResult:
    """Train ``module`` for up to ``epochs`` epochs; with a validating ``context``, evaluate
    every ``eval_every`` epochs, stop after ``patience`` evaluations without improvement and
    restore the best epoch's parameters. ``optimizer=None``: ``loss_fn`` updates the
    parameters itself (a compiled solver such as per-sample SGD) and returns the batch's
    loss; everything else is the same."""
    ctx = context or FitContext()
    validate = ctx.validate
    st = LoopState(module, make_optimizer(optimizer, module, lr, weight_decay),
                   EarlyStopping(patience, ctx.higher_is_better), FitResult(), generator)
    start, t_loop = 1, time.perf_counter()
    if ctx.checkpoint is not None and ctx.resume:
        saved = load_checkpoint(ctx.checkpoint, ctx.checkpoint_key)
        if saved is not None:
            start = st.restore(saved)
    res, bar, t_train = st.result, _progress(epochs, desc, ctx.progress), 0.0
    epoch = start
    while epoch <= epochs:
        t0 = time.perf_counter()
        entry = {"epoch": epoch, "loss": round(train_epoch(module, batches(epoch), loss_fn, st.opt, epoch,
                                                           max_grad_norm), 6)}
        t_train += time.perf_counter() - t0
        res.epochs_run = epoch
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if validate is not None and (epoch % eval_every == 0 or epoch == epochs):
            module.eval()
            entry["valid"] = round(value := float(validate(model)), 6)
            st.early.update(epoch, value, module)
            res.best_epoch, res.best_valid = st.early.best_epoch, st.early.best_valid
        res.history.append(entry)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(entry)
        stop = validate is not None and st.early.stop
        if ctx.checkpoint is not None:
            st.save(ctx.checkpoint, ctx.checkpoint_key, epoch, stop, res.resumed_s + time.perf_counter() - t_loop)
        epoch = math.inf if stop else epoch + 1
    if bar is not None:
        bar.close()
    if st.early.best_state is not None:
        module.load_state_dict(st.early.best_state)
    elif validate is None:
        res.best_epoch = res.epochs_run
    module.eval()
    res.epochs_run = max(res.epochs_run, len(res.history))
    res.seconds_per_epoch = t_train / max(res.epochs_run - (res.resumed_from or 0), 1)
    return res
