"""One parity run: our model and a peer's implementation of it on the same prepared split,
scored by the same evaluator, stopped by the same rule, over the same seeds.

Ours runs exactly as ``mmbench run`` does (:func:`mmbench.runner.run_one`). The peer is
trained by its own code one epoch at a time (:mod:`.adapters`) while :class:`EpochJudge`
applies our early stopping: the validation value of the protocol's selection metric from
:func:`mmbench.runner.validation_context`, evaluated every ``eval_every`` epochs and at the
last, :class:`~mmbench.models.training.EarlyStopping` with our ``patience``, the best epoch
restored; then both are evaluated on valid and test by :func:`~mmbench.evaluate.ranking.evaluate_ranking`
under the protocol's masking.
"""
from __future__ import annotations

import datetime as _dt
import tempfile
import time
from pathlib import Path

from ..protocol import Protocol


class EpochJudge:
    """Our early-stopping rule for a peer that calls back after each epoch. ``epoch_end``
    returns True when the peer must stop (patience spent or the epoch budget reached)."""

    def __init__(self, model, context, epochs: int, patience: int, eval_every: int):
        from ..models.training import EarlyStopping, FitResult

        self.model, self.context = model, context
        self.epochs, self.eval_every = epochs, eval_every
        self.early = EarlyStopping(patience, context.higher_is_better)
        self.result = FitResult()
        self.train_s, self.mark = 0.0, time.perf_counter()

    def epoch_end(self, epoch: int, loss: float | None = None) -> bool:
        self.train_s += time.perf_counter() - self.mark
        entry = {"epoch": epoch} | ({} if loss is None else {"loss": round(float(loss), 6)})
        self.result.epochs_run = epoch
        if epoch % self.eval_every == 0 or epoch == self.epochs:
            value = float(self.context.validate(self.model))
            entry["valid"] = round(value, 6)
            self.early.update(epoch, value, self.model)
            self.result.best_epoch, self.result.best_valid = self.early.best_epoch, self.early.best_valid
        self.result.history.append(entry)
        self.mark = time.perf_counter()
        return self.early.stop or epoch >= self.epochs

    def finish(self) -> dict:
        """Restore the best epoch's state; the fit summary (as a run record's ``fit``)."""
        if self.early.best_state is not None:
            self.model.load_state_dict(self.early.best_state)
        self.result.seconds_per_epoch = self.train_s / max(self.result.epochs_run, 1)
        info = self.result.as_dict()
        return {k: info[k] for k in ("best_epoch", "epochs_run", "best_valid", "seconds_per_epoch", "history")}


def budget(params: dict) -> tuple[int, int, int]:
    """(epochs, patience, eval_every) of our model's parameters; a model without epochs (Pop) gets one."""
    return int(params.get("epochs", 1)), int(params.get("patience", 1)), int(params.get("eval_every", 1))


def evaluate(model, dataset, protocol: Protocol, device: str) -> dict:
    """Valid and test metrics of a fitted model, as in a run record."""
    from ..evaluate.ranking import evaluate_ranking

    return {split: {k: round(float(v), 8) for k, v in sorted(evaluate_ranking(
        model.score, dataset, split, protocol.ranking_metrics, device=device,
        mask_valid_at_test=protocol.mask_valid_at_test).metrics.items())} for split in ("valid", "test")}


def run_peer(peer: str, mapping, dataset, features: dict, params: dict, seed: int, protocol: Protocol,
             device: str = "cpu") -> dict:
    """Train and evaluate the peer's model on one seed: metrics, fit summary, timing."""
    from ..models.training import seed_everything
    from ..runner import validation_context
    from .adapters import adapter

    seed_everything(seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"mmbench-parity-{peer}-") as work:
        model = adapter(peer).build(dataset, features, mapping, seed, Path(work), device)
        t_setup = time.perf_counter() - t0
        epochs, patience, eval_every = budget(params)
        judge = EpochJudge(model, validation_context(dataset, protocol, protocol.valid_metric("ranking"), device),
                           epochs, patience, eval_every)
        model.train(judge.epoch_end, epochs)
        fit = judge.finish()
        t_fit = time.perf_counter() - t0 - t_setup
        t1 = time.perf_counter()
        metrics = evaluate(model, dataset, protocol, device)
    return {"seed": seed, "metrics": metrics, "fit": fit,
            "timing": {"setup_s": round(t_setup, 3), "fit_s": round(t_fit, 3),
                       "eval_s": round(time.perf_counter() - t1, 3), "total_s": round(time.perf_counter() - t0, 3)}}


def run_ours(spec, dataset, params: dict, seed: int, protocol: Protocol, feature_keys: list[str] | None,
             device: str = "cpu") -> dict:
    """Our model on one seed, exactly as ``mmbench run`` (its record written to a scratch folder)."""
    from ..runner import run_one

    with tempfile.TemporaryDirectory(prefix="mmbench-parity-ours-") as results:
        rec, _, _ = run_one(spec, dataset, params=params, seed=seed, device=device, protocol=protocol,
                            results=Path(results), suite="parity", force=True, feature_keys=feature_keys, lock=False)
    fit = {k: rec["fit"][k] for k in ("best_epoch", "epochs_run", "best_valid", "seconds_per_epoch", "history")}
    return {"seed": seed, "metrics": rec["metrics"], "fit": fit, "timing": rec["timing"]}


def run_parity(model: str, dataset, peer: str, *, seeds=(0, 1, 2), params: dict | None = None,
               protocol: Protocol | None = None, feature_keys: list[str] | None = None, device: str = "cpu",
               peer_features: str | None = None, suite: str | None = None, log=print) -> dict:
    """Both implementations on every seed; the parity record (see :mod:`.report`)."""
    from ..env import environment
    from ..runner import ModelSpec, dataset_features
    from .adapters import adapter, mapping as peer_mapping
    from .report import compare, make_record

    protocol = protocol or Protocol()
    spec = ModelSpec.resolve(model)
    resolved = spec.params(params or {})
    features = dataset_features(spec.cls, dataset, feature_keys)
    m = peer_mapping(peer, spec.name, resolved)
    if features:  # the peer reads them preprocessed as our model does, unless told otherwise
        m.features = peer_features or resolved.get("features", "standard")
    env = environment(device)  # before anything runs: the tree the numbers come from
    ours, theirs = [], []
    for seed in seeds:
        ours.append(run_ours(spec, dataset, params or {}, seed, protocol, feature_keys, device))
        log(f"seed {seed}: ours   {_line(ours[-1], protocol)}")
        theirs.append(run_peer(peer, m, dataset, features, resolved, seed, protocol, device))
        log(f"seed {seed}: {peer:6s} {_line(theirs[-1], protocol)}")
    return make_record(model=spec.name, peer=peer, peer_version=adapter(peer).version(), mapping=m,
                       params=resolved, dataset=dataset.identity(),
                       features={k: f.fingerprint for k, f in sorted(features.items())}, protocol=protocol,
                       suite=suite, ours=ours, theirs=theirs, comparison=compare(ours, theirs, protocol),
                       env=env, created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat())


def _line(run: dict, protocol: Protocol) -> str:
    m = protocol.valid_metric("ranking")
    return (f"test {m} {run['metrics']['test'][m]:.4f}, best epoch {run['fit']['best_epoch']} of "
            f"{run['fit']['epochs_run']}, {run['timing']['total_s']:.1f} s")
