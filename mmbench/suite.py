"""Suites: a versioned benchmark definition in ``leaderboards/<suite>/suite.toml``.

A suite fixes the dataset (card name + version + expected fingerprint), the data
protocol (filters, split), the evaluation protocol (metrics, main metric, masking), the
seeds and the models with their parameters.

Model selection uses the validation split only. A model entry with a ``grid`` (or an
Optuna ``search``) first runs every candidate configuration on the search seeds
(``run.search_seeds``, default: the first seed) as *search* records, which are evaluated
on valid only; the configuration with the best mean validation main metric is then run on
every seed as *final* records, the only ones evaluated on test. Running a suite is
resumable: :func:`survey` derives what is done, missing, failed or still waiting for a
search from the records on disk, and :func:`run_suite` runs what is missing, round after
round, through a backend (``local`` here; a backend only needs to execute a list of
independent :class:`Job` s, e.g. with :func:`execute_job`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ConfigError
from .protocol import Protocol
from .schema import ArrayOf, ListOf, Table, load_toml, validate
from .data.cards import FILTERS_SPEC, SPLIT_SPEC

SUITE_SPEC = {
    "suite": Table({
        "name": (str, True),
        "version": (int, True),
        "description": (str, False),
        "results": (str, False),  # where records live, relative to the suite folder
    }, required=True),
    "dataset": Table({
        "name": (str, True),
        "version": (str, True),
        "fingerprint": (str, False),
        "source": (str, False),
        "features": (ListOf(str), False),
        "feature_fingerprints": Table({}, open=True),
    }, required=True),
    "filters": Table(FILTERS_SPEC),
    "split": Table(SPLIT_SPEC),
    "protocol": Table({
        "metrics": (ListOf(str), False),
        "main_metric": (str, False),
        "mask_valid_at_test": (bool, False),
        "rating_metrics": (ListOf(str), False),
    }),
    "run": Table({"seeds": (ListOf(int), True), "device": (str, False), "search_seeds": (ListOf(int), False)},
                 required=True),
    "leaderboard": Table({
        "test": (str, False),  # significance test for the marks: t-test, wilcoxon or fisher
        "alpha": (float, False),
        "confidence": (float, False),
    }),
    "models": ArrayOf({
        "name": (str, True),
        "label": (str, False),
        "params": Table({}, open=True),
        "grid": Table({}, open=True),
        "search": (str, False),  # "grid" (default) or "optuna"
        "trials": (int, False),
        "space": Table({}, open=True),
    }, required=True),
}
SEARCH_METHODS = ("grid", "optuna")


@dataclass
class ModelEntry:
    name: str
    params: dict
    grid: dict = field(default_factory=dict)
    label: str | None = None
    search: str = "grid"
    trials: int = 0
    space: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What identifies the entry in the suite and the leaderboard (label, else name)."""
        return self.label or self.name

    @property
    def method(self) -> str:
        """How the configuration is chosen: fixed, grid or optuna."""
        if self.search == "optuna":
            return "optuna"
        return "grid" if len(self.configurations()) > 1 else "fixed"

    def configurations(self) -> list[dict]:
        if not self.grid:
            return [dict(self.params)]
        keys = sorted(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            p = dict(self.params)
            p.update(dict(zip(keys, values)))
            out.append(p)
        return out

    def matches(self, params: dict) -> bool:
        """Whether resolved ``params`` (defaults merged) can come from this entry."""
        for k, v in self.params.items():
            if k in self.grid or k in self.space:
                continue
            if k not in params or params[k] != v:
                return False
        for k, values in self.grid.items():
            if params.get(k) not in values:
                return False
        for k, dist in self.space.items():
            v = params.get(k)
            if "choices" in dist:
                if v not in dist["choices"]:
                    return False
            elif not isinstance(v, (int, float)) or not dist["low"] <= v <= dist["high"]:
                return False
        return True


@dataclass
class Suite:
    path: Path  # the suite.toml
    data: dict
    protocol: Protocol
    models: list[ModelEntry]

    @property
    def name(self) -> str:
        return self.data["suite"]["name"]

    @property
    def version(self) -> int:
        return self.data["suite"]["version"]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def seeds(self) -> list[int]:
        return list(self.data["run"]["seeds"])

    @property
    def search_seeds(self) -> list[int]:
        return list(self.data["run"].get("search_seeds", self.seeds[:1]))

    @property
    def dataset(self) -> dict:
        return self.data["dataset"]

    @property
    def device(self) -> str:
        return self.data["run"].get("device", "auto")

    @property
    def board(self) -> dict:
        """Leaderboard settings: significance test, alpha, confidence level."""
        b = self.data.get("leaderboard", {})
        return {"test": b.get("test", "t-test"), "alpha": float(b.get("alpha", 0.05)),
                "confidence": float(b.get("confidence", 0.95))}

    def entry(self, key: str) -> ModelEntry:
        return next(m for m in self.models if m.key == key)

    def results_dir(self, override: str | Path | None = None) -> Path:
        """Records of a suite live in ``<suite folder>/<results>`` when the suite names one
        (committed records, checked by CI); else in ``$MMBENCH_RESULTS`` (default
        ``./results``), as for ``mmbench run``."""
        if override is not None:
            return Path(override)
        rel = self.data["suite"].get("results")
        if rel:
            return self.folder / rel
        from .paths import default_results_dir

        return default_results_dir()

    def card(self):
        from .data.cards import find_card

        card = find_card(f"{self.dataset['name']}@{self.dataset['version']}")
        return card

    def prepare(self, *, mirror: str | None = None, force: bool = False):
        from .data.prepare import prepare

        card = self.card()
        filters = self.data.get("filters", card.filters)
        split = self.data.get("split", card.split)
        ds = prepare(card, filters=filters, split=split, source=self.dataset.get("source"), mirror=mirror,
                     force=force)
        want = self.dataset.get("fingerprint")
        if want and ds.fingerprint != want:
            raise ConfigError(f"prepared dataset fingerprint {ds.fingerprint[:16]}... differs from the suite's "
                              f"{want[:16]}...", where=str(self.path),
                              hint="the data or the preparation changed: make a new suite version")
        return ds


def _check_space(name: str, space: dict, where: str) -> None:
    for k, d in space.items():
        ok = isinstance(d, dict) and (
            (set(d) == {"choices"} and isinstance(d["choices"], list) and d["choices"])
            or ({"low", "high"} <= set(d) <= {"low", "high", "log"}
                and all(isinstance(d[x], (int, float)) and not isinstance(d[x], bool) for x in ("low", "high"))
                and d["low"] < d["high"] and isinstance(d.get("log", False), bool)))
        if not ok:
            raise ConfigError(f"models '{name}' space.{k} must be {{ choices = [...] }} or "
                              "{ low = ..., high = ..., log = true|false } with low < high", where=where)


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if path.is_dir():
        path = path / "suite.toml"
    data = load_toml(path)
    where = str(path)
    validate(data, SUITE_SPEC, where=where)
    if not data["run"]["seeds"]:
        raise ConfigError("run.seeds must list at least one seed", where=where)
    if "search_seeds" in data["run"] and not data["run"]["search_seeds"]:
        raise ConfigError("run.search_seeds must list at least one seed (or be left out)", where=where)
    try:
        protocol = Protocol.from_dict(data.get("protocol", {}))
    except ConfigError as e:
        raise ConfigError(str(e), where=where) from None
    if "split" in data:
        from .data.cards import validate_split

        validate_split(data["split"], where)
    board = data.get("leaderboard", {})
    from .stats import TESTS

    if board.get("test", "t-test") not in TESTS:
        raise ConfigError(f"leaderboard.test must be one of {list(TESTS)}", where=where)
    if not 0 < board.get("alpha", 0.05) < 1 or not 0 < board.get("confidence", 0.95) < 1:
        raise ConfigError("leaderboard.alpha and leaderboard.confidence must lie in (0, 1)", where=where)
    models = []
    for m in data["models"]:
        for k, v in m.get("grid", {}).items():
            if not isinstance(v, list) or not v:
                raise ConfigError(f"models '{m['name']}' grid.{k} must be a non-empty list", where=where)
        search = m.get("search", "grid")
        if search not in SEARCH_METHODS:
            raise ConfigError(f"models '{m['name']}' search must be one of {list(SEARCH_METHODS)}", where=where)
        if search == "optuna":
            if not m.get("space") or m.get("trials", 0) < 1 or m.get("grid"):
                raise ConfigError(f"models '{m['name']}': an Optuna search needs a 'space' table and trials >= 1 "
                                  "(and no grid)", where=where)
            _check_space(m["name"], m["space"], where)
        elif m.get("space") or "trials" in m:
            raise ConfigError(f"models '{m['name']}': 'space' and 'trials' need search = \"optuna\"", where=where)
        models.append(ModelEntry(m["name"], dict(m.get("params", {})), dict(m.get("grid", {})), m.get("label"),
                                 search, int(m.get("trials", 0)), dict(m.get("space", {}))))
    seen = set()
    for m in models:
        if m.key in seen:
            raise ConfigError(f"two [[models]] entries are called {m.key!r}", where=where,
                              hint="give each entry of the same model a distinct label")
        seen.add(m.key)
    return Suite(path, data, protocol, models)


def check_models(suite: Suite) -> None:
    """Every model of the suite must be installed (before anything runs)."""
    from .errors import RegistryError
    from .runner import ModelSpec

    for m in suite.models:
        try:
            spec = ModelSpec.resolve(m.name)
            for p in m.configurations():
                spec.params(p)
            if m.space:
                spec.params({**m.params, **{k: None for k in m.space}})
        except (RegistryError, ConfigError) as e:
            raise type(e)(str(e), where=str(suite.path)) from None
        if m.method == "optuna":
            _optuna()


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("an Optuna search needs the optuna package",
                          hint="pip install 'mmbench[tune]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# -- jobs -----------------------------------------------------------------------------------------
@dataclass
class Job:
    entry: str  # the suite entry's key
    model: str  # registered model name
    params: dict  # as given by the suite (defaults are merged when run)
    seed: int
    stage: str = "final"  # "search": valid only; "final": valid + test
    selection: dict = field(default_factory=lambda: {"method": "fixed", "on": "valid"})
    params_hash: str = ""
    replace: bool = False  # an existing record of this key was chosen under another selection

    @property
    def key(self) -> tuple:
        return (self.model, self.params_hash, self.seed, self.stage)

    def describe(self) -> str:
        return f"{self.entry} {self.params_hash[:8]} seed {self.seed}" + (" (search)" if self.stage == "search" else "")


@dataclass
class Row:
    """One line of ``suite status``: a job and its state."""
    entry: str
    model: str
    params_hash: str
    seed: int
    stage: str
    state: str  # done | failed | missing | waiting | invalid
    reason: str = ""
    job: Job | None = None
    record: dict | None = None


def recorded_name(name: str) -> str:
    """The model name a record carries for a suite entry: the registered name, or
    ``<file stem>:<Class>`` for a ``path/to/file.py:Class`` entry (as the runner names it)."""
    if name.endswith(".py") or ".py:" in name:
        path, _, cls = name.partition(":")
        return f"{Path(path).stem}:{cls}"
    return name


def model_dir(name: str) -> str:
    return name.replace(":", "-").replace("/", "-")


def selection_metric(protocol: Protocol, task: str) -> str:
    """The validation metric a configuration is chosen by (as the runner's early stopping):
    the main metric, or the first ranking metric for a ranking model on a rating track."""
    m = protocol.main_metric
    if "@" not in m and task != "rating":
        return protocol.ranking_metrics[0]
    return m


def _better(metric: str) -> int:
    from .evaluate.metrics import higher_is_better

    return 1 if higher_is_better(metric.split("/", 1)[0]) else -1


def choose(candidates: list[dict], metric: str) -> dict | None:
    """The candidate (``{"params_hash", "valid", ...}``) with the best mean validation value;
    ties go to the smallest params hash, so the choice never depends on file order."""
    ok = [c for c in candidates if c.get("valid") is not None]
    if not ok:
        return None
    sign = _better(metric)
    return min(ok, key=lambda c: (-sign * c["valid"], c["params_hash"]))


class _Survey:
    def __init__(self, suite: Suite, results: Path, force: bool, executed: set):
        from .runner import ModelSpec

        self.suite, self.results, self.force, self.executed = suite, results, force, executed
        self.specs: dict[str, ModelSpec] = {}
        self._resolve = ModelSpec.resolve

    def spec(self, name):
        if name not in self.specs:
            self.specs[name] = self._resolve(name)
        return self.specs[name]

    def job_row(self, entry: ModelEntry, params: dict, seed: int, stage: str, selection: dict) -> Row:
        from .io import hash_params
        from .records import read_record, record_path

        spec = self.spec(entry.name)
        h = hash_params(spec.params(params))
        job = Job(entry.key, entry.name, dict(params), seed, stage, selection, h)
        path = record_path(self.results, self.suite.name, self.suite.dataset["name"], model_dir(spec.name), h, seed,
                           stage)
        row = Row(entry.key, entry.name, h, seed, stage, "missing", job=job)
        if path.exists() and (not self.force or job.key in self.executed):
            try:
                rec = read_record(path)
            except Exception as e:  # noqa: BLE001 - shown, never used
                row.state, row.reason = "invalid", str(e)
                return row
            row.record = rec
            row.state = "done" if rec["status"] == "ok" else "failed"
            row.reason = rec.get("error", "")
            if rec.get("selection") != selection:
                # the same run, but chosen differently (e.g. a fixed configuration that a grid now
                # selects): the record must say how this suite chose it, so it is run again
                row.state, job.replace = "stale", True
                row.reason = (f"recorded as selected by {rec.get('selection', {}).get('method')!r}, this suite "
                              f"selects it by {selection.get('method')!r}; it is run again")
        return row

    def entry_rows(self, entry: ModelEntry) -> list[Row]:
        if entry.method == "fixed":
            sel = {"method": "fixed", "on": "valid"}
            return [self.job_row(entry, entry.params, s, "final", sel) for s in self.suite.seeds]
        task = getattr(self.spec(entry.name).cls, "task", "ranking")
        metric = selection_metric(self.suite.protocol, task)
        search_sel = {"method": entry.method, "on": "valid", "stage": "search", "metric": metric}
        rows: list[Row] = []
        candidates: list[dict] = []
        complete = True
        configs = entry.configurations() if entry.method == "grid" else None
        trials = self._optuna_trials(entry, metric) if entry.method == "optuna" else None
        i = 0
        while True:
            if configs is not None:
                if i >= len(configs):
                    break
                params = configs[i]
            else:
                try:
                    params = trials.send(candidates[-1]) if i else next(trials)
                except StopIteration:
                    break
            i += 1
            seed_rows = [self.job_row(entry, params, s, "search", search_sel) for s in self.suite.search_seeds]
            rows += seed_rows
            cand = {"params_hash": seed_rows[0].params_hash,
                    "params": {k: params[k] for k in sorted(params) if k in entry.grid or k in entry.space}}
            if all(r.state == "done" for r in seed_rows):
                vals = [r.record["metrics"]["valid"].get(metric) for r in seed_rows]
                cand["valid"] = round(sum(vals) / len(vals), 8) if None not in vals else None
            elif any(r.state in ("missing", "invalid", "stale") for r in seed_rows):
                complete = False
                if trials is not None:  # an Optuna search is sequential: the next trial needs this one
                    if entry.trials > i:
                        rows.append(Row(entry.key, entry.name, "?", -1, "search", "waiting",
                                        f"{entry.trials - i} more trial(s) after this one"))
                    break
            else:
                cand["valid"] = None  # a failed candidate is never chosen
            candidates.append(cand)
        if not complete:
            rows += [Row(entry.key, entry.name, "?", s, "final", "waiting", "the search is not finished")
                     for s in self.suite.seeds]
            return rows
        best = choose(candidates, metric)
        if best is None:
            rows += [Row(entry.key, entry.name, "?", s, "final", "failed", "every candidate configuration failed")
                     for s in self.suite.seeds]
            return rows
        unique = {c["params_hash"]: c for c in candidates}
        sel = {"method": entry.method, "on": "valid", "stage": "final", "metric": metric,
               "seeds": self.suite.search_seeds, "chosen": best["params_hash"],
               "candidates": [unique[h] for h in sorted(unique)]}
        params = next(r.job.params for r in rows if r.job is not None and r.params_hash == best["params_hash"])
        rows += [self.job_row(entry, params, s, "final", sel) for s in self.suite.seeds]
        return rows

    def _optuna_trials(self, entry: ModelEntry, metric: str):
        """Replays the study from the records: TPE seeded with the first search seed asks the
        same parameters again as long as it is told the same values, so a resumed search
        goes on where it stopped."""
        optuna = _optuna()
        sampler = optuna.samplers.TPESampler(seed=self.suite.search_seeds[0])
        study = optuna.create_study(direction="maximize" if _better(metric) > 0 else "minimize", sampler=sampler)
        dists = {}
        for k, d in sorted(entry.space.items()):
            if "choices" in d:
                dists[k] = optuna.distributions.CategoricalDistribution(d["choices"])
            elif isinstance(d["low"], int) and isinstance(d["high"], int):
                dists[k] = optuna.distributions.IntDistribution(d["low"], d["high"], log=d.get("log", False))
            else:
                dists[k] = optuna.distributions.FloatDistribution(float(d["low"]), float(d["high"]),
                                                                  log=d.get("log", False))
        for _ in range(entry.trials):
            trial = study.ask(dists)
            outcome = yield {**entry.params, **trial.params}
            if outcome is not None and outcome.get("valid") is not None:
                study.tell(trial, outcome["valid"])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)


def survey(suite: Suite, results: Path | None = None, *, only: list[str] | None = None, force: bool = False,
           executed: set | None = None) -> list[Row]:
    """The state of every job of the suite, derived from the records on disk. With
    ``force``, records not written in this session (``executed``) count as missing."""
    s = _Survey(suite, suite.results_dir(results), force, executed or set())
    rows = []
    for entry in suite.models:
        if only and entry.name not in only and entry.key not in only:
            continue
        rows += s.entry_rows(entry)
    return rows


def jobs(suite: Suite, only: list[str] | None = None, results: Path | None = None) -> list[Job]:
    """Jobs that can run now (missing records whose inputs are known)."""
    return [r.job for r in survey(suite, results, only=only) if r.state in ("missing", "stale")]


# -- execution ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    job: Job
    status: str  # done | skipped | failed | busy
    record: dict | None = None
    path: Path | None = None
    error: str = ""


def execute_job(suite: Suite, dataset, job: Job, *, results: Path, device: str, force: bool = False) -> Outcome:
    """Run one job in this process (what every backend does on its worker)."""
    from .errors import MMBenchError
    from .runner import run_one

    try:
        rec, path, status = run_one(job.model, dataset, params=job.params, seed=job.seed, device=device,
                                    protocol=suite.protocol, results=results, suite=suite.name,
                                    force=force or job.replace,
                                    selection=job.selection, feature_keys=suite.dataset.get("features"))
    except MMBenchError as e:
        return Outcome(job, "failed", error=str(e))
    return Outcome(job, status, rec, path)


def run_jobs_local(suite: Suite, dataset, todo: list[Job], *, results: Path, device: str, force: bool,
                   on_done: Callable[[Outcome], None], keep_going: bool = True) -> list[Outcome]:
    """The local backend: the jobs one after the other in this process."""
    from .errors import TrainingError

    out = []
    for job in todo:
        o = execute_job(suite, dataset, job, results=results, device=device, force=force)
        on_done(o)
        out.append(o)
        if o.status == "failed" and not keep_going:
            raise TrainingError(f"{job.describe()} failed: {o.error}")
    return out


def backend_runner(name: str, workers: int | None = None, address: str | None = None):
    """A runner like :func:`run_jobs_local` on backend ``name`` (see :mod:`mmbench.backends`:
    ``local`` = a process pool sized to the machine, in this process when that is one worker;
    ``ray`` = one Ray task per job)."""
    from .backends import suite_runner

    return suite_runner(name, workers=workers, address=address)


def run_suite(suite: Suite, *, only: list[str] | None = None, device: str | None = None,
              results: Path | None = None, force: bool = False, echo=print, mirror: str | None = None,
              keep_going: bool = True, backend: str = "local", workers: int | None = None,
              address: str | None = None) -> dict[str, int]:
    """Run every missing job of the suite (existing records are skipped), in rounds: the
    searches first, then the chosen configurations. A failed job is recorded as failed and
    the suite goes on; the counts are returned."""
    runner = backend_runner(backend, workers, address)
    if only:
        known = {m.name for m in suite.models} | {m.key for m in suite.models}
        unknown = sorted(set(only) - known)
        if unknown:
            raise ConfigError(f"--only {unknown[0]!r} is not a model of the suite", where=str(suite.path),
                              hint=f"models: {', '.join(sorted(known))}")
    check_models(suite)
    ds = suite.prepare(mirror=mirror)
    results = suite.results_dir(results)
    counts = {"done": 0, "skipped": 0, "failed": 0, "busy": 0}
    executed: set = set()
    main = suite.protocol.main_metric
    n = 0

    def on_done(o: Outcome):
        nonlocal n
        n += 1
        counts[o.status] += 1
        if o.status == "failed":
            echo(f"[{n}] {o.job.describe()}: FAILED {o.error}")
            return
        m = o.record.get("metrics", {}) if o.record else {}
        split = "valid" if o.job.stage == "search" else "test"
        key = o.job.selection.get("metric", main) if o.job.stage == "search" else main
        value = m.get(split, {}).get(key)
        shown = f"{split} {key}={value:.4f}" if isinstance(value, float) else ""
        echo(f"[{n}] {o.job.describe()}: {o.status} {shown}".rstrip())

    while True:
        rows = survey(suite, results, only=only, force=force, executed=executed)
        todo = [r.job for r in rows if r.state in ("missing", "stale") and r.job.key not in executed]
        if not todo:
            break
        runner(suite, ds, todo, results=results, device=device or suite.device, force=force, on_done=on_done,
               keep_going=keep_going)
        executed.update(j.key for j in todo)
    counts["skipped"] += sum(1 for r in rows if r.state in ("done", "failed") and r.job is not None
                             and r.job.key not in executed)
    return counts


def status(suite: Suite, results: Path | None = None) -> list[dict]:
    """One row per job: done / failed (with reason) / missing / waiting (for a search) /
    stale (a record of the same run chosen under another selection: run again)."""
    return [{"model": r.entry, "params_hash": r.params_hash[:8], "seed": r.seed, "stage": r.stage,
             "state": r.state, "reason": r.reason} for r in survey(suite, results)]
