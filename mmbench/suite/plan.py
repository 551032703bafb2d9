"""Search planning: the jobs of a suite and their state, derived from the records on disk.

Model selection uses the validation split only. A model entry with a ``grid`` (or an
Optuna ``search``) first runs every candidate configuration on the search seeds
(``run.search_seeds``, default: the first seed) as *search* records, which are evaluated
on valid only; the configuration with the best mean validation value of the protocol's
selection metric (:meth:`Protocol.selection_metric`) is then run on every seed as *final*
records, the only ones evaluated on test. :func:`survey` says for every job whether it is
done, missing, failed, stale or still waiting for a search; an Optuna study is replayed
from the records, so a resumed search goes on where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..evaluate.metrics import higher_is_better
from .definition import ModelEntry, Suite


def check_models(suite: Suite) -> None:
    """Every model of the suite must be installed, every configuration it may run (the
    fixed parameters, each grid point, the ends and choices of an Optuna space) must lie
    inside the model's declared parameters and an entry's own feature keys must give its
    model the modalities it requires, before anything runs."""
    from ..errors import RegistryError
    from ..models import model_params
    from ..models.content import select_features
    from ..models.params import check_space
    from ..runner import ModelSpec

    for m in suite.models:
        try:
            spec = ModelSpec.resolve(m.name)
            for p in m.configurations():
                spec.params(p)
            check_space(model_params(spec.cls), m.space, f"model {m.name!r}")
            if m.features is not None:  # the keys' modalities only: no feature is read
                select_features(spec.cls, dict.fromkeys(m.features))
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
    def features(self) -> list[str] | None:
        """The entry's own feature keys (None: the suite's), carried in its selection and record."""
        return self.selection.get("features")

    @property
    def key(self) -> tuple:
        return (self.model, self.params_hash, tuple(self.features or ()), self.seed, self.stage)

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
    state: str  # done | failed | missing | waiting | stale | invalid
    reason: str = ""
    job: Job | None = None
    record: dict | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # earlier failed runs kept beside: (file, why)
    path: Path | None = None  # where the job's record lives


def entry_selection(entry: ModelEntry, **fields) -> dict:
    """The ``selection`` block of an entry's jobs: how the configuration is chosen, with the
    entry's own feature keys when it names them (they go into its records and paths)."""
    return {**fields, **({"features": entry.features} if entry.features is not None else {})}


def choose(candidates: list[dict], metric: str) -> dict | None:
    """The candidate (``{"params_hash", "valid", ...}``) with the best mean validation value;
    ties go to the smallest params hash, so the choice never depends on file order."""
    ok = [c for c in candidates if c.get("valid") is not None]
    if not ok:
        return None
    sign = 1 if higher_is_better(metric) else -1
    return min(ok, key=lambda c: (-sign * c["valid"], c["params_hash"]))


class _Survey:
    def __init__(self, suite: Suite, results: Path, force: bool, executed: set):
        from ..env import git_state
        from ..runner import ModelSpec

        self.suite, self.results, self.force, self.executed = suite, results, force, executed
        self.specs: dict[str, ModelSpec] = {}
        self._resolve = ModelSpec.resolve
        # a committed rules-2 board rejects records from a dirty tree: from a clean one, run them again
        self.renew_dirty = (suite.rules >= 2 and suite.keeps_records and git_state().get("dirty") is False
                            and Path(results).resolve() == suite.results_dir().resolve())

    def spec(self, name):
        if name not in self.specs:
            self.specs[name] = self._resolve(name)
        return self.specs[name]

    def job_row(self, entry: ModelEntry, params: dict, seed: int, stage: str, selection: dict) -> Row:
        from ..io import hash_params
        from ..records import dirty_reason, failed_history, model_dir, read_record, record_path

        spec = self.spec(entry.name)
        h = hash_params(spec.params(params))
        job = Job(entry.key, entry.name, dict(params), seed, stage, selection, h)
        path = record_path(self.results, self.suite.name, self.suite.dataset["name"], model_dir(spec.name), h, seed,
                           stage, job.features)
        row = Row(entry.key, entry.name, h, seed, stage, "missing", job=job, history=failed_history(path), path=path)
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
            elif (row.state == "done" and stage == "final" and self.suite.robustness is not None
                  and not self.suite.robustness.matches(rec.get("robustness"))):
                row.state, job.replace = "stale", True
                row.reason = "it lacks the suite's [robustness] evaluation; it is run again"
            elif row.state == "done" and self.renew_dirty and (why := dirty_reason(rec)):
                row.state, job.replace = "stale", True
                row.reason = f"{why}: its committed board would reject it; it is run again from this clean tree"
        return row

    def entry_rows(self, entry: ModelEntry) -> list[Row]:
        if entry.method == "fixed":
            sel = entry_selection(entry, method="fixed", on="valid")
            return [self.job_row(entry, entry.params, s, "final", sel) for s in self.suite.seeds]
        metric = self.suite.protocol.selection_metric(self.spec(entry.name).cls)
        search_sel = entry_selection(entry, method=entry.method, on="valid", stage="search", metric=metric)
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
                    "params": {k: params[k] for k in entry.searched}}
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
        sel = entry_selection(entry, method=entry.method, on="valid", stage="final", metric=metric,
                              seeds=self.suite.search_seeds, chosen=best["params_hash"],
                              candidates=[unique[h] for h in sorted(unique)])
        params = next(r.job.params for r in rows if r.job is not None and r.params_hash == best["params_hash"])
        rows += [self.job_row(entry, params, s, "final", sel) for s in self.suite.seeds]
        return rows

    def _optuna_trials(self, entry: ModelEntry, metric: str):
        """Replays the study from the records: TPE seeded (rules 2: with the budget's seed;
        before: with the first search seed) asks the same parameters again as long as it is
        told the same values, so a resumed search goes on where it stopped. Under rules 2
        the declared defaults are the first trial."""
        optuna = _optuna()
        seed = self.suite.budget["seed"] if self.suite.rules >= 2 else self.suite.search_seeds[0]
        sampler = optuna.samplers.TPESampler(seed=seed)
        study = optuna.create_study(direction="maximize" if higher_is_better(metric) else "minimize", sampler=sampler)
        if entry.centre:
            study.enqueue_trial(entry.centre)
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
