"""One run: (model, params, prepared dataset, protocol, seed) -> evaluated run record."""
from __future__ import annotations

import datetime as _dt
import inspect
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import registry
from .errors import ConfigError, MMBenchError, TrainingError
from .io import hash_params
from .models import declared_modalities
from .protocol import Protocol
from .records import SCHEMA, read_record, record_path, write_record


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
        """Defaults merged with the given hyper-parameters; unknown names are an error."""
        names = self.cls.param_names() if hasattr(self.cls, "param_names") else list(
            inspect.signature(self.cls.__init__).parameters)[1:]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(f"model {self.name!r} has no parameter(s) {unknown}",
                              hint=f"its parameters are: {', '.join(names) or 'none'}")
        params = dict(self.cls.default_params()) if hasattr(self.cls, "default_params") else {}
        params.update(given)
        return params


class Validator:
    """Early-stopping callback: the validation value of one metric (the model never sees labels)."""

    def __init__(self, dataset, protocol: Protocol, metric: str, device: str):
        from .evaluate.metrics import higher_is_better

        self.dataset, self.protocol, self.metric, self.device = dataset, protocol, metric, device
        self.higher_is_better = higher_is_better(metric)
        self.calls = 0

    def __call__(self, model) -> float:
        from .evaluate.ranking import evaluate_rating, evaluate_ranking

        self.calls += 1
        if "@" in self.metric:
            res = evaluate_ranking(model.score, self.dataset, "valid", [self.metric], device=self.device,
                                   beyond_accuracy=False)
        else:
            res = evaluate_rating(model.predict, self.dataset, "valid", device=self.device)
        return res.metrics[self.metric]


def select_features(model_cls, dataset, keys: list[str] | None) -> dict:
    """Features given to the model: the keys asked for (or all stored ones) whose modality the
    model requires or uses. A required modality with no feature (or, for ``requires_any``, no
    feature of any of those modalities) is an error before training."""
    store = dataset.features
    available = store.keys() if keys is None else list(keys)
    for k in available:
        if k not in store:
            raise ConfigError(f"feature {k!r} is not in dataset {dataset.name!r} (have: {store.keys()})",
                              hint="run `mmbench features extract` first")
    requires, any_of, wanted = declared_modalities(model_cls)
    chosen = {k: store.get(k) for k in available if k.split("/", 1)[0] in wanted}
    have = {k.split("/", 1)[0] for k in chosen}
    missing = sorted(requires - have)
    if any_of and not any_of & have:
        missing.append(" or ".join(sorted(any_of)))
    if missing:
        raise ConfigError(f"model needs modality {missing} but dataset {dataset.name!r} has no such feature "
                          f"(features: {', '.join(store.keys()) or 'none'})",
                          hint="extract features (`mmbench features extract`) or choose another model")
    return chosen


def run_one(model: str | ModelSpec, dataset, *, params: dict | None = None, seed: int = 0, device: str = "cpu",
            protocol: Protocol | None = None, results: Path = Path("results"), suite: str = "adhoc",
            force: bool = False, feature_keys: list[str] | None = None, selection: dict | None = None,
            lock: bool = True, resume: bool = False) -> tuple[dict, Path, str]:
    """Run, evaluate and record. Returns (record, path, status) with status in
    {'done', 'skipped', 'failed', 'busy'}; 'busy' = another process holds this key."""
    from .train import resolve_device

    spec = model if isinstance(model, ModelSpec) else ModelSpec.resolve(model)
    protocol = protocol or Protocol()
    params = spec.params(params or {})
    phash = hash_params(params)
    # a search record (one candidate of a hyper-parameter search) is evaluated on valid only
    stage = (selection or {}).get("stage", "final")
    path = record_path(results, suite, dataset.name, spec.name.replace(":", "-").replace("/", "-"), phash, seed,
                       stage)
    if path.exists() and not force:
        return read_record(path), path, "skipped"
    if not lock:
        return _execute(spec, dataset, params, phash, seed, device, protocol, suite, feature_keys,
                        selection, path, resolve_device, resume)
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=0):
            if path.exists() and not force:  # finished by another process meanwhile
                return read_record(path), path, "skipped"
            return _execute(spec, dataset, params, phash, seed, device, protocol, suite, feature_keys,
                            selection, path, resolve_device, resume)
    except Timeout:
        return {}, path, "busy"


def checkpoint_path(record_file: Path) -> Path:
    return record_file.with_name(record_file.stem + ".ckpt")


def _execute(spec, dataset, params, phash, seed, device, protocol, suite, feature_keys, selection, path,
             resolve_device, resume=False):
    from .env import environment
    from .evaluate.ranking import evaluate_rating, evaluate_ranking

    device = resolve_device(device)
    features = select_features(spec.cls, dataset, feature_keys)
    rec = {
        "schema": SCHEMA,
        "status": "ok",
        "suite": suite,
        "dataset": dataset.identity(),
        "features": {k: f.fingerprint for k, f in sorted(features.items())},
        "model": {"name": spec.name, "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
                  "distribution": spec.distribution, "version": spec.version,
                  "task": getattr(spec.cls, "task", "ranking"), "params": params, "params_hash": phash},
        "protocol": protocol.as_dict(),
        "protocol_hash": protocol.hash,
        "seed": seed,
        "selection": selection or {"method": "fixed", "on": "valid"},
        "metrics": {},
        "timing": {},
        "env": environment(device),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    t0 = time.perf_counter()
    try:
        model = spec.cls(**params)
        valid_metric = protocol.valid_metric(getattr(spec.cls, "task", "ranking"))
        if "@" not in valid_metric and getattr(spec.cls, "task", "ranking") != "rating":
            valid_metric = protocol.ranking_metrics[0]
        validator = Validator(dataset, protocol, valid_metric, device)
        validator.checkpoint = checkpoint_path(path)  # the shared loop saves its state here each epoch
        validator.checkpoint_key = f"{phash}:{dataset.fingerprint}:{seed}:{device}"
        validator.resume = resume
        fitted = model.fit(dataset.train_data(), features, seed=seed, device=device, validator=validator)
        if fitted is not model:
            raise TrainingError(f"{spec.name}.fit() must return self")
        t_fit = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics, per_user = {}, {}
        splits = ("valid",) if rec["selection"].get("stage") == "search" else ("valid", "test")
        for split in splits:
            res = evaluate_ranking(model.score, dataset, split, protocol.ranking_metrics, device=device,
                                   mask_valid_at_test=protocol.mask_valid_at_test)
            metrics[split] = res.metrics
            if split == "test":
                per_user = {"users": res.users, **res.per_user}
            if getattr(spec.cls, "task", "ranking") == "rating":
                rres = evaluate_rating(model.predict, dataset, split, device=device)
                metrics[split].update(rres.metrics)
                if split == "test":
                    per_user.update({"rating_users": rres.users, **{k: v for k, v in rres.per_user.items()}})
        t_eval = time.perf_counter() - t1
        rec["metrics"] = {s: {k: round(float(v), 8) for k, v in sorted(m.items())} for s, m in metrics.items()}
        fit_info = dict(getattr(model, "fit_info_", {}) or {})
        rec["fit"] = {k: fit_info.get(k) for k in ("best_epoch", "epochs_run", "best_valid", "seconds_per_epoch")}
        rec["fit"]["valid_metric"] = valid_metric
        rec["fit"]["history"] = fit_info.get("history", [])
        rec["timing"] = {"fit_s": round(t_fit, 3), "eval_s": round(t_eval, 3),
                         "total_s": round(time.perf_counter() - t0, 3)}
        write_record(path, rec, per_user)
        checkpoint_path(path).unlink(missing_ok=True)
        return rec, path, "done"
    except MMBenchError as e:
        _write_failed(path, rec, e, t0)
        raise
    except Exception as e:  # noqa: BLE001 - a plugin may raise anything; record why, then re-raise
        _write_failed(path, rec, e, t0)
        raise TrainingError(f"{spec.name} failed: {type(e).__name__}: {e}", where=str(path)) from e


def _write_failed(path: Path, rec: dict, err: BaseException, t0: float) -> None:
    checkpoint_path(path).unlink(missing_ok=True)  # resuming would only reproduce the failure
    rec = dict(rec)
    rec["status"] = "failed"
    rec["error"] = f"{type(err).__name__}: {err}"
    rec["traceback"] = traceback.format_exc(limit=8)
    rec["metrics"] = {}
    rec["timing"] = {"total_s": round(time.perf_counter() - t0, 3)}
    write_record(path, rec)
