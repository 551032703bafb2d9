"""Conformance suite for models (like scikit-learn's ``check_estimator``).

``check_model("vbpr")`` (a registered name, a ``file.py:Class`` spec or a class) fits the
model a few times on a tiny synthetic multimodal dataset (built in a temporary
``MMBENCH_HOME`` unless a dataset is given) with short training (``epochs=2`` and small
batches, where the model has such parameters) and returns one :class:`CheckResult` per
contract clause:

- ``params``: hyper-parameters are declared (``Param``, or explicit keyword parameters
  with defaults); get_params / set_params / clone round-trip; they serialise for the run
  record;
- ``fit returns self``;
- ``inputs not mutated``: the training arrays and feature matrices are unchanged by fit;
- ``score shape``: a float tensor (b, n_items), a fresh tensor each call;
- ``no NaN``: for every user;
- ``batch independent``: a user's scores do not depend on the other users in the batch;
- ``deterministic``: the same seed gives identical scores in-process;
- ``clone``: a clone fitted with the same seed scores identically;
- ``modalities``: a missing required modality is a clear MMBenchError, and so is no feature
  at all for a model that ``requires_any``; each optional modality alone works; features
  of undeclared modalities change nothing;
- ``predict`` (rating models): shape (n,), finite, and equal to ``score`` at the pairs.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import traceback
from dataclasses import dataclass
from typing import Any, Callable

#: short training for the checks, applied to the parameters a model has
FAST_PARAMS = {"epochs": 2, "batch_size": 128, "patience": 2, "eval_every": 1}


@dataclass
class CheckResult:
    model: str
    check: str
    passed: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.model}: {self.check}: {'ok' if self.passed else 'FAILED'}{' - ' + self.detail if self.detail else ''}"


class CheckFailed(AssertionError):
    pass


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def resolve_model(model) -> tuple[str, type]:
    if isinstance(model, str):
        from . import registry

        return model, registry.load_model_class(model)
    return getattr(model, "__name__", str(model)), model


@contextlib.contextmanager
def temporary_home():
    """A throwaway ``MMBENCH_HOME`` (restored afterwards)."""
    old = os.environ.get("MMBENCH_HOME")
    with tempfile.TemporaryDirectory(prefix="mmbench-check-") as d:
        os.environ["MMBENCH_HOME"] = d
        try:
            yield d
        finally:
            if old is None:
                os.environ.pop("MMBENCH_HOME", None)
            else:
                os.environ["MMBENCH_HOME"] = old


def check_dataset():
    """The tiny dataset the checks run on: 3 modalities (and raw inputs for end-to-end models),
    missing rows, cold items, ratings."""
    from .synthetic import add_raw_inputs, make_synthetic

    ds = make_synthetic(n_users=40, n_items=60, dim=4, per_user=10, cold_fraction=0.15, missing_fraction=0.2,
                        seed=0, name="check")
    add_raw_inputs(ds)
    return ds


def check_model(model, *, dataset=None, params: dict | None = None, device: str = "cpu",
                seed: int = 0) -> list[CheckResult]:
    """Run the conformance checks on one model; never raises for a failing model."""
    from .errors import ConfigError

    name, cls = resolve_model(model)
    unknown = sorted(set(params or {}) - set(_param_names(cls)))
    if unknown:
        raise ConfigError(f"model {name!r} has no parameter(s) {unknown}",
                          hint=f"its parameters are: {', '.join(_param_names(cls)) or 'none'}")
    return _run_named(name, cls, dict(params or {}), dataset=dataset, device=device, seed=seed)


def check_models(models, *, params: dict | None = None, **kwargs) -> list[CheckResult]:
    """Check several models; ``params`` go to each model that has them (a name no model has
    is an error: it is a typo, not a model failure)."""
    from .errors import ConfigError

    params = dict(params or {})
    classes, out = [], []
    for m in models:
        try:
            classes.append(resolve_model(m))
        except Exception as e:  # noqa: BLE001 - e.g. a plugin that does not import
            out.append(CheckResult(str(m), "load", False, f"{type(e).__name__}: {e}"))
    known = {n for _, c in classes for n in _param_names(c)}
    unknown = sorted(set(params) - known)
    if unknown and classes:
        raise ConfigError(f"no checked model has parameter(s) {unknown}", hint="see `mmbench models list`")
    for name, cls in classes:
        mine = {k: v for k, v in params.items() if k in _param_names(cls)}
        out.extend(_run_named(name, cls, mine, **kwargs))
    return out


def _param_names(cls) -> list[str]:
    """The declared parameter names ([] when the declaration is broken: the ``params``
    check reports that)."""
    from .errors import MMBenchError
    from .models import model_params

    try:
        return list(model_params(cls))
    except MMBenchError:
        return []


@contextlib.contextmanager
def _one_thread():
    """The check data is tiny: one intra-op thread is fastest (several threads mostly wait
    on each other, ~10x slower on a busy machine). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_named(name, cls, params, *, dataset=None, device="cpu", seed=0):
    with _one_thread():
        if dataset is None:
            with temporary_home():
                return _Checker(name, cls, check_dataset(), params, device, seed).run()
        return _Checker(name, cls, dataset, params, device, seed).run()


class _Checker:
    def __init__(self, name, cls, dataset, params, device, seed):
        self.name, self.cls, self.ds, self.device, self.seed = name, cls, dataset, str(device), seed
        self.given = dict(params or {})
        self.results: list[CheckResult] = []
        self.model = None
        self.scores = None

    # -- plumbing -----------------------------------------------------------------------------
    def check(self, check: str, fn: Callable[[], Any], needs_fit: bool = False) -> bool:
        if needs_fit and self.model is None:
            self.results.append(CheckResult(self.name, check, False, "skipped: fit failed"))
            return False
        try:
            detail = fn() or ""
            self.results.append(CheckResult(self.name, check, True, detail))
            return True
        except CheckFailed as e:
            self.results.append(CheckResult(self.name, check, False, str(e)))
        except Exception as e:  # noqa: BLE001 - any error of the model is a failed check
            tb = traceback.extract_tb(e.__traceback__)
            where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
            self.results.append(CheckResult(self.name, check, False, f"{type(e).__name__}: {e}{where}"))
        return False

    def params(self) -> dict:
        names = _param_names(self.cls)
        p = {k: v for k, v in FAST_PARAMS.items() if k in names}
        p.update(self.given)
        return p

    def features(self):
        from .runner import dataset_features

        return dataset_features(self.cls, self.ds, None)

    def fit(self, features=None, params=None):
        m = self.cls(**(self.params() if params is None else params))
        feats = self.features() if features is None else features
        out = m.fit(self.ds.train_data(), feats, seed=self.seed, device=self.device)
        return m, out

    def all_scores(self, m):
        import torch

        users = torch.arange(self.ds.n_users)
        return torch.cat([m.score(users[s:s + 16]).detach().float().cpu() for s in range(0, len(users), 16)])

    def same(self, a, b) -> bool:
        import torch

        if a.shape != b.shape:
            return False
        if str(self.device).startswith("cuda"):  # cuBLAS may differ in the last bits
            return torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())  # NaN is the "no NaN" check's business

    # -- the checks ---------------------------------------------------------------------------
    def run(self) -> list[CheckResult]:
        self.check("params", self.check_params)
        self.check("fit returns self", self.check_fit)
        self.check("inputs not mutated", self.check_not_mutated, needs_fit=True)
        self.check("score shape", self.check_score_shape, needs_fit=True)
        self.check("no NaN", self.check_no_nan, needs_fit=True)
        self.check("batch independent", self.check_batches, needs_fit=True)
        self.check("deterministic", self.check_deterministic, needs_fit=True)
        self.check("clone", self.check_clone, needs_fit=True)
        self.check("modalities", self.check_modalities)
        if getattr(self.cls, "task", "ranking") == "rating":
            self.check("predict", self.check_predict, needs_fit=True)
        return self.results

    def check_params(self):
        from .io import hash_params
        from .models import model_params

        declared = model_params(self.cls)  # raises for an __init__ parameter without a default
        params = self.params()
        m = self.cls(**params)
        got = m.get_params()
        _require(list(got) == list(declared), f"get_params keys {sorted(got)} != declared parameters "
                                              f"{sorted(declared)}")
        expected = {**{k: p.default for k, p in declared.items()}, **params}
        for k, v in expected.items():
            _require(got[k] == v, f"get_params()[{k!r}] = {got[k]!r}, but {v!r} was given or is the default "
                                  f"(the constructor must store parameters unchanged)")
        _require(m.clone().get_params() == got, "clone() has different parameters")
        m.set_params(**got)
        _require(m.get_params() == got, "set_params(**get_params()) changed the parameters")
        try:
            hash_params(got)
        except (TypeError, ValueError) as e:
            raise CheckFailed(f"parameters do not serialise to JSON for the run record: {e}") from None
        return f"{len(declared)} declared"

    def check_fit(self):
        train = self.ds.train_data()
        feats = self.features()
        self.inputs = (train, feats, {k: getattr(train, k).copy() for k in ("user", "item", "rating", "timestamp")},
                       {k: (f.values.copy(), f.mask.copy()) for k, f in feats.items()})
        m = self.cls(**self.params())
        out = m.fit(train, feats, seed=self.seed, device=self.device)
        _require(out is m, f"fit() returned {type(out).__name__}, not self")
        self.model = m
        self.scores = self.all_scores(m)

    def check_not_mutated(self):
        import numpy as np

        train, feats, before, fbefore = self.inputs
        for k, a in before.items():
            b = getattr(train, k)
            _require(b.dtype == a.dtype and np.array_equal(a, b), f"fit() modified TrainData.{k}")
        for k, (v, mk) in fbefore.items():
            _require(np.array_equal(v, feats[k].values) and np.array_equal(mk, feats[k].mask),
                     f"fit() modified feature {k}")
        return f"train arrays and {len(fbefore)} feature(s) unchanged"

    def check_score_shape(self):
        import torch

        users = torch.tensor([0, 3, 1], dtype=torch.long)
        s = self.model.score(users)
        _require(isinstance(s, torch.Tensor), f"score() returned {type(s).__name__}, expected a torch.Tensor")
        _require(tuple(s.shape) == (3, self.ds.n_items), f"score() shape {tuple(s.shape)} != (3, {self.ds.n_items})")
        _require(s.is_floating_point(), f"score() dtype {s.dtype} is not floating point")
        ref = s.detach().clone()
        s.fill_(0.0)  # the evaluator may write into the tensor it gets
        again = self.model.score(users)
        _require(self.same(again.detach().float().cpu(), ref.float().cpu()),
                 "score() returned a tensor the model reuses (writing into it changed the next call)")
        return f"{s.dtype}, fresh tensor"

    def check_no_nan(self):
        import torch

        s = self.scores
        _require(not torch.isnan(s).any(), f"{int(torch.isnan(s).sum())} NaN scores")
        _require(not torch.isposinf(s).any(), "+inf scores")

    def check_batches(self):
        import torch

        users = torch.tensor([5, 2, 9, 0], dtype=torch.long)
        s = self.model.score(users).detach().float().cpu()
        ref = self.scores[users]
        tol = 1e-5 * max(1.0, float(ref.abs().max()))
        _require(s.shape == ref.shape and torch.allclose(s, ref, rtol=1e-5, atol=tol, equal_nan=True),
                 f"scores of users {users.tolist()} differ when scored in another batch "
                 f"(max diff {float((s - ref).abs().max()):.3g})")

    def check_deterministic(self):
        m, _ = self.fit()
        _require(self.same(self.all_scores(m), self.scores), f"two fits with seed {self.seed} score differently")

    def check_clone(self):
        c = self.model.clone()
        _require(type(c) is self.cls and c.get_params() == self.model.get_params(), "clone() differs")
        c.fit(self.ds.train_data(), self.features(), seed=self.seed, device=self.device)
        _require(self.same(self.all_scores(c), self.scores), "a clone fitted with the same seed scores differently")

    def check_modalities(self):
        from .errors import MMBenchError
        from .models import declared_modalities

        requires, any_of, reads = declared_modalities(self.cls)
        store = self.ds.features
        every = {k: store.get(k) for k in store.keys()}
        selected = self.features()
        undeclared = sorted({f.modality for f in every.values()} - reads)
        _require(all(f.modality in reads for f in selected.values()), "select_features gave undeclared modalities")
        notes = []

        def must_refuse(feats, what):
            try:
                self.fit(feats)
            except MMBenchError:
                notes.append(f"clear error {what}")
            except Exception as e:  # noqa: BLE001
                raise CheckFailed(f"{what} fit raised {type(e).__name__}: {e}; raise an MMBenchError "
                                  f"(e.g. ConfigError) naming the modality") from None
            else:
                raise CheckFailed(f"fit succeeded {what}")

        for mod in sorted(requires):
            must_refuse({k: f for k, f in selected.items() if f.modality != mod}, f"without required modality {mod}")
        if any_of:
            must_refuse({k: f for k, f in selected.items() if f.modality not in any_of},
                        f"without any of {'/'.join(sorted(any_of))}")
        for mod in sorted(reads - requires):
            keys = [k for k, f in selected.items() if f.modality == mod]
            if not keys:
                continue
            subset = {k: f for k, f in selected.items() if f.modality in requires or k in keys}
            m, _ = self.fit(subset)
            import torch

            _require(not torch.isnan(self.all_scores(m)).any(), f"NaN scores with only {mod}")
            notes.append(f"works with {mod} only")
        if reads and not requires and not any_of:
            try:
                self.fit({})
                notes.append("works without features")
            except MMBenchError:
                notes.append("clear error without features")
            except Exception as e:  # noqa: BLE001
                raise CheckFailed(f"without any feature fit raised {type(e).__name__}: {e}; raise an MMBenchError "
                                  f"saying which modality is needed") from None
        if undeclared:
            ref = self.scores if self.scores is not None else self.all_scores(self.fit()[0])
            m, _ = self.fit(every)
            _require(self.same(self.all_scores(m), ref),
                     f"scores change when features of undeclared modalities {undeclared} are passed: declare them "
                     f"in `uses`/`requires` or ignore them")
            notes.append(f"ignores {', '.join(undeclared)}")
        return "; ".join(notes)

    def check_predict(self):
        import torch

        users = torch.tensor([0, 1, 2, 3], dtype=torch.long)
        items = torch.tensor([0, 5, 2, 7], dtype=torch.long)
        p = self.model.predict(users, items)
        _require(isinstance(p, torch.Tensor) and tuple(p.shape) == (4,),
                 f"predict() returned shape {tuple(getattr(p, 'shape', ()))}, expected (4,)")
        p = p.detach().float().cpu()
        _require(bool(torch.isfinite(p).all()), "predict() returned NaN/inf")
        ref = self.scores[users, items]
        _require(torch.allclose(p, ref, rtol=1e-4, atol=1e-4),
                 f"predict() {p.tolist()} disagrees with score() {ref.tolist()} at the same pairs")
