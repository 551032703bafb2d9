"""One run: (model, params, prepared dataset, protocol, seed) -> evaluated run record."""
from __future__ import annotations

import datetime as _dt
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import registry
from .errors import ConfigError, MMBenchError, TrainingError
from .io import hash_params, storage
from .models import model_params
from .models.params import validate_params
from .protocol import RANKING, Protocol
from .robustness import DropSpec, evaluate_drops
from .records import SCHEMA, finished, model_dir, record_path, retire_failed, write_record


@dataclass
class ModelSpec:
    name: str  # registered name, or file.py:Class
    cls: type
    distribution: str
    version: str

    @classmethod
    def resolve(cls, spec: str) -> "ModelSpec":
        if spec.endswith(".py") or ".py:" in spec:
            klass = registry.load_model_class(spec)
            return cls(Path(spec.split(":")[0]).stem + ":" + klass.__name__, klass, "local-file", "0")
        entry = registry.get_entry("models", spec)
        return cls(spec, entry.load(), entry.distribution, entry.version)

    def params(self, given: dict) -> dict:
        """The declared defaults merged with ``given``, each value checked against its
        declaration (and coerced to its type); an unknown name or a value out of range is a
        ConfigError naming the parameter."""
        return validate_params(model_params(self.cls), given, f"model {self.name!r}")


def validation_context(dataset, protocol: Protocol, metric: str, device: str, checkpoint: Path | None = None,
                       checkpoint_key: str = "", resume: bool = False):
    """The :class:`~mmbench.models.training.FitContext` of a run: early stopping on the
    validation value of ``metric`` (the model never sees labels), checkpoints beside the
    record."""
    from .evaluate.metrics import get, higher_is_better
    from .evaluate.ranking import evaluate_rating, evaluate_ranking
    from .models.training import FitContext

    def validate(model) -> float:
        if get(metric).kind == "rating":
            res = evaluate_rating(model.predict, dataset, "valid", device=device)
        else:
            res = evaluate_ranking(model.score, dataset, "valid", [metric], device=device, beyond_accuracy=False)
        if metric not in res.metrics:  # an item group no validation user has a relevant item in
            raise ConfigError(f"no validation user has a relevant item in the group of {metric!r}",
                              hint="select on a metric without the group, or give validation cold items "
                                   "(split.cold_valid_share > 0)")
        return res.metrics[metric]

    return FitContext(validate, higher_is_better(metric), checkpoint, checkpoint_key, resume)


def dataset_features(model_cls, dataset, keys: list[str] | None) -> dict:
    """The stored features of ``dataset`` (all, or ``keys``) that the model reads; an unknown
    key, or a modality the model needs and the dataset lacks, is an error before training."""
    from .models.content import select_features

    return select_features(model_cls, dataset.features.view(keys))


def run_one(model: str | ModelSpec, dataset, *, params: dict | None = None, seed: int = 0, device: str = "cpu",
            protocol: Protocol | None = None, results: Path = Path("results"), suite: str = "adhoc",
            force: bool = False, feature_keys: list[str] | None = None, selection: dict | None = None,
            lock: bool = True, resume: bool = False, robustness: DropSpec | None = None) -> tuple[dict, Path, str]:
    """Run, evaluate and record. Returns (record, path, status) with status in
    {'done', 'skipped', 'failed', 'busy'}; 'busy' = another process holds this key. A
    finished record is skipped (unless ``force``); a failed one is moved aside as history
    and run again. With ``robustness``, a final record gains the test-time modality-drop
    block (:mod:`mmbench.robustness`)."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec.resolve(model)
    job = _Job(spec, dataset, spec.params(params or {}), seed, device, protocol or Protocol(), suite, feature_keys,
               selection or {"method": "fixed", "on": "valid"}, resume, robustness)
    job.path = record_path(results, suite, dataset.name, model_dir(spec.name), job.params_hash, seed,
                           job.selection.get("stage", "final"), job.selection.get("features"))
    if not force and (rec := job.finished()) is not None:
        return rec, job.path, "skipped"
    if not lock:
        retire_failed(job.path)
        return job.execute()
    from filelock import FileLock, Timeout

    with storage(job.path.parent, "create the results folder"):
        job.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(job.path) + ".lock", timeout=0):
            if not force and (rec := job.finished()) is not None:  # finished by another process meanwhile
                return rec, job.path, "skipped"
            retire_failed(job.path)
            return job.execute()
    except Timeout:
        return {}, job.path, "busy"


def checkpoint_path(record_file: Path) -> Path:
    return record_file.with_name(record_file.stem + ".ckpt")


@dataclass
class _Job:
    """One run being executed: fit, evaluate, write the record (or a failed record)."""

    spec: ModelSpec
    dataset: object
    params: dict
    seed: int
    device: str
    protocol: Protocol
    suite: str
    feature_keys: list[str] | None
    selection: dict
    resume: bool
    robustness: DropSpec | None = None
    path: Path | None = None
    reused: dict | None = None  # the search run whose trained model this final run takes (see ``trained_by_search``)

    @property
    def params_hash(self) -> str:
        return hash_params(self.params)

    @property
    def stage(self) -> str:
        return self.selection.get("stage", "final")

    def checkpoint_key(self) -> str:
        """Names the training a checkpoint holds: parameters, data, seed, device and thread
        count (a float sum split over other threads may round otherwise)."""
        import torch

        return f"{self.params_hash}:{self.dataset.fingerprint}:{self.seed}:{self.device}:t{torch.get_num_threads()}"

    def trained_by_search(self) -> dict | None:
        """A final run trains exactly as the search run of the same parameters and seed did
        (training is deterministic and never sees the test split). When that search run
        finished and kept its last checkpoint, made under the same device and thread count,
        the final run resumes from it: the same model, bit for bit, without training it a
        second time (the record says ``fit.reused``; ``leaderboard reproduce`` retrains it)."""
        if self.stage != "final":
            return None
        search = self.path.with_name(f"seed{self.seed}.search.json")
        ckpt = checkpoint_path(search)
        if not ckpt.exists() or (rec := finished(search)) is None:
            return None
        env = rec.get("env", {})
        if env.get("device") != self.device or env.get("threads") != _threads() \
                or rec["model"].get("params_hash") != self.params_hash or rec.get("seed") != self.seed:
            return None
        return {"name": search.name, "checkpoint": ckpt,
                "seconds_per_epoch": (rec.get("fit") or {}).get("seconds_per_epoch")}

    @property
    def task(self) -> str:
        return getattr(self.spec.cls, "task", "ranking")

    @property
    def drops(self) -> DropSpec | None:
        """The modality drop this job is evaluated under: a final record's only."""
        return self.robustness if self.stage == "final" else None

    def finished(self) -> dict | None:
        """The finished record of this job (None: there is none, or it lacks a modality drop
        this run asks for). The path does not name the protocol: a record made under another
        one is an error, never taken as this run."""
        rec = finished(self.path)
        if rec is not None and rec.get("protocol_hash") != self.protocol.hash:
            raise ConfigError(f"holds a finished run under another protocol ({rec.get('protocol_hash')}; this run's is "
                              f"{self.protocol.hash})", where=str(self.path),
                              hint="label this protocol's runs with their own --suite, or --force to replace it")
        if rec is None or self.drops is None or self.drops.matches(rec.get("robustness")):
            return rec
        return None

    def execute(self) -> tuple[dict, Path, str]:
        from .models.training import resolve_device

        self.device = resolve_device(self.device)
        features = dataset_features(self.spec.cls, self.dataset, self.feature_keys)
        drops = self.drops
        if drops is not None:
            drops.check(self.feature_keys or self.dataset.features.keys())
        rec = self.header(features)
        t0 = time.perf_counter()
        try:
            model, valid_metric = self.fit(features)
            t_fit = time.perf_counter() - t0
            metrics, per_user, t_eval = self.evaluate(model)
            if drops is not None:
                t1 = time.perf_counter()
                rec["robustness"] = evaluate_drops(model, drops, self.dataset, self.protocol, device=self.device,
                                                   params=self.params, read=sorted(features))
                t_eval += time.perf_counter() - t1
        except MMBenchError as e:
            self.write_failed(rec, e, t0)
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a plugin may raise anything, exit() included:
            self.write_failed(rec, e, t0)  # record why, then fail with one line (never exit 0 unrecorded)
            raise TrainingError(f"{self.spec.name} failed: {type(e).__name__}: {e}", where=str(self.path)) from e
        rec["metrics"] = {s: {k: round(float(v), 8) for k, v in sorted(m.items())} for s, m in metrics.items()}
        rec["fit"] = fit_summary(model, valid_metric)
        if self.reused is not None:  # trained once, by the search run: say so, with its time per epoch
            rec["fit"].pop("resumed_from", None), rec["fit"].pop("resumed_s", None)  # that is the reuse
            rec["fit"]["reused"] = self.reused["name"]
            rec["fit"]["seconds_per_epoch"] = self.reused["seconds_per_epoch"]
        earlier = rec["fit"].get("resumed_s", 0.0)  # a killed run's time before its last checkpoint (0 if reused)
        rec["timing"] = {"fit_s": round(t_fit + earlier, 3), "eval_s": round(t_eval, 3),
                         "total_s": round(time.perf_counter() - t0 + earlier, 3)}
        rec["env"]["load"] = [rec["env"]["load"][0], load_average()]  # the machine's load at start and end
        write_record(self.path, rec, per_user)
        if self.stage != "search":  # a search run's last checkpoint is the chosen final's seed run, trained
            checkpoint_path(self.path).unlink(missing_ok=True)
        if self.reused is not None:
            self.reused["checkpoint"].unlink(missing_ok=True)
        return rec, self.path, "done"

    def header(self, features: dict) -> dict:
        from .env import environment
        from .features.provenance import leaking

        spec = self.spec
        return {
            "schema": SCHEMA, "status": "ok", "suite": self.suite, "dataset": self.dataset.identity(),
            "features": {k: f.fingerprint for k, f in sorted(features.items())},
            "features_leak": leaking(features),  # those derived from interactions beyond train
            "model": {"name": spec.name, "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
                      "distribution": spec.distribution, "version": spec.version, "task": self.task,
                      "params": self.params, "params_hash": self.params_hash},
            "protocol": self.protocol.as_dict(), "protocol_hash": self.protocol.hash, "seed": self.seed,
            "selection": self.selection, "metrics": {}, "timing": {},
            "env": {**environment(self.device), "ranking": RANKING, "load": [load_average()]},
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        }

    def fit(self, features: dict):
        model = self.spec.cls(**self.params)
        valid_metric = self.protocol.selection_metric(self.spec.cls)
        self.reused = self.trained_by_search()
        ckpt = checkpoint_path(self.path) if self.reused is None else self.reused["checkpoint"]
        context = validation_context(self.dataset, self.protocol, valid_metric, self.device, ckpt,
                                     self.checkpoint_key(), self.resume or self.reused is not None)
        fitted = model.fit(self.dataset.train_data(), features, seed=self.seed, device=self.device, context=context)
        if fitted is not model:
            raise TrainingError(f"{self.spec.name}.fit() must return self")
        return model, valid_metric

    def evaluate(self, model) -> tuple[dict, dict, float]:
        """Metrics of each evaluated split (valid only for a search record) and the test
        split's per-user vectors."""
        from .evaluate.ranking import evaluate_rating, evaluate_ranking

        t1 = time.perf_counter()
        metrics, per_user = {}, {}
        splits = ("valid",) if self.selection.get("stage") == "search" else ("valid", "test")
        for split in splits:
            res = evaluate_ranking(model.score, self.dataset, split, self.protocol.ranking_metrics,
                                   device=self.device, mask_valid_at_test=self.protocol.mask_valid_at_test)
            metrics[split] = res.metrics
            if split == "test":
                per_user = {"users": res.users, **res.per_user}
            if self.task == "rating":
                rres = evaluate_rating(model.predict, self.dataset, split, device=self.device)
                metrics[split].update(rres.metrics)
                if split == "test":
                    per_user.update({"rating_users": rres.users, **rres.per_user})
        return metrics, per_user, time.perf_counter() - t1

    def write_failed(self, rec: dict, err: BaseException, t0: float) -> None:
        checkpoint_path(self.path).unlink(missing_ok=True)  # resuming would only reproduce the failure
        rec = dict(rec)
        rec["status"] = "failed"
        rec["error"] = f"{type(err).__name__}: {err}"
        rec["traceback"] = traceback.format_exc(limit=8)
        rec["metrics"] = {}
        rec["timing"] = {"total_s": round(time.perf_counter() - t0, 3)}
        write_record(self.path, rec)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def load_average() -> float | None:
    """The machine's 1-minute load average (runnable processes; None where the OS has none):
    a record's timing is only comparable with others made under a similar load."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None


def fit_summary(model, valid_metric: str) -> dict:
    """The record's ``fit`` block: best and last epoch, validation value, time per epoch, history."""
    info = dict(getattr(model, "fit_info_", {}) or {})
    out = {k: info.get(k) for k in ("best_epoch", "epochs_run", "best_valid", "seconds_per_epoch")}
    out["valid_metric"] = valid_metric
    if info.get("resumed_from"):  # continued from a checkpoint: from which epoch, after how many seconds
        out["resumed_from"], out["resumed_s"] = info["resumed_from"], info.get("resumed_s", 0.0)
    out["history"] = info.get("history", [])
    return out
