"""Running a suite: its missing jobs through a backend, round after round, and its status.

A job is one run (model, params, seed, stage) that writes its own record; the jobs of one
round are independent, so any :mod:`mmbench.backends` backend can run them (``local``: in
this process or a process pool; ``ray``: one task per job). The searches run first, then
the configurations they choose; existing records are skipped, so a run resumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import ConfigError
from .definition import Suite
from .plan import Job, check_models, survey


@dataclass
class Outcome:
    job: Job
    status: str  # done | skipped | failed | busy
    record: dict | None = None
    path: Path | None = None
    error: str = ""


def execute_job(suite: Suite, dataset, job: Job, *, results: Path, device: str, force: bool = False) -> Outcome:
    """Run one job in this process (what every backend does on its worker). A job killed
    part way continues from its last epoch's checkpoint (bit for bit: the checkpoint names
    parameters, data, seed, device and thread count), so a suite spans sessions."""
    from ..errors import MMBenchError
    from ..runner import run_one

    try:
        rec, path, status = run_one(job.model, dataset, params=job.params, seed=job.seed, device=device,
                                    protocol=suite.protocol, results=results, suite=suite.name,
                                    force=force or job.replace,
                                    selection=job.selection, feature_keys=job.features or suite.dataset.get("features"),
                                    robustness=suite.robustness, resume=True)
    except MMBenchError as e:
        return Outcome(job, "failed", error=str(e))
    return Outcome(job, status, rec, path)


_DATASETS: dict = {}  # per worker process: prepared datasets already loaded


def _worker_job(suite: Suite, dataset_path: str, job: Job, results: Path, device: str, force: bool) -> Outcome:
    """What a worker process runs for one job: load the prepared dataset (once per process)
    and run the job as :func:`execute_job` does here."""
    from ..data.dataset import PreparedDataset

    ds = _DATASETS.get(dataset_path)
    if ds is None:
        ds = _DATASETS[dataset_path] = PreparedDataset.load(dataset_path)
    return execute_job(suite, ds, job, results=results, device=device, force=force)


def backend_runner(backend: str = "local", *, workers: int | None = None, address: str | None = None):
    """``run(suite, dataset, jobs, *, results, device, force, on_done, keep_going=True)``:
    runs the jobs on ``backend`` (one worker: here, in order), calls ``on_done(outcome)`` here
    as each finishes and, unless ``keep_going``, stops at the first failure."""
    import importlib.util

    from ..backends import BACKENDS, execute, pool_size

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
    if backend == "local" and address is not None:
        raise ConfigError("--address is only for the ray backend", hint="add --backend ray")
    if backend == "ray" and importlib.util.find_spec("ray") is None:  # fail before any job runs
        raise ConfigError("the ray backend needs Ray", hint="pip install 'mmbench[ray]', or use --backend local")

    def run(suite, dataset, todo, *, results, device, force, on_done, keep_going=True):
        from ..errors import TrainingError
        from ..models.training import resolve_device

        where = resolve_device(device) if device == "auto" else device  # sizes the pool / asks Ray for GPUs
        if backend == "local" and pool_size(len(todo), workers, where)[0] == 1:
            tasks = [partial(execute_job, suite, dataset, job, results=results, device=device, force=force)
                     for job in todo]
        else:
            tasks = [partial(_worker_job, suite, str(dataset.path), job, results, device, force) for job in todo]

        def done(i, outcome):
            on_done(outcome)
            if outcome.status == "failed" and not keep_going:
                raise TrainingError(f"{outcome.job.describe()} failed: {outcome.error}")

        return execute(tasks, backend=backend, workers=workers, address=address, device=where, on_result=done)

    return run


class _Progress:
    """Counts the outcomes and prints one line for each."""

    def __init__(self, echo, main_metric: str):
        self.echo, self.main = echo, main_metric
        self.counts = {"done": 0, "skipped": 0, "failed": 0, "busy": 0, "invalid": 0}
        self.n = 0

    def __call__(self, o: Outcome) -> None:
        self.n += 1
        self.counts[o.status] += 1
        if o.status == "failed":
            self.echo(f"[{self.n}] {o.job.describe()}: FAILED {o.error}")
            return
        m = o.record.get("metrics", {}) if o.record else {}
        split = "valid" if o.job.stage == "search" else "test"
        key = o.job.selection.get("metric", self.main) if o.job.stage == "search" else self.main
        value = m.get(split, {}).get(key)
        shown = f"{split} {key}={value:.4f}" if isinstance(value, float) else ""
        self.echo(f"[{self.n}] {o.job.describe()}: {o.status} {shown}".rstrip())


def run_suite(suite: Suite, *, only: list[str] | None = None, device: str | None = None,
              results: Path | None = None, force: bool = False, echo=print, mirror: str | None = None,
              keep_going: bool = True, backend: str = "local", workers: int | None = None,
              address: str | None = None) -> dict[str, int]:
    """Run every missing or failed job of the suite (finished records are skipped), in
    rounds: the searches first, then the chosen configurations. A failed job is recorded as
    failed and the suite goes on; an unreadable record is counted as invalid, with its
    reason. The counts are returned."""
    runner = backend_runner(backend, workers=workers, address=address)
    if only:
        known = {m.name for m in suite.models} | {m.key for m in suite.models}
        unknown = sorted(set(only) - known)
        if unknown:
            raise ConfigError(f"--only {unknown[0]!r} is not a model of the suite", where=str(suite.path),
                              hint=f"models: {', '.join(sorted(known))}")
    check_models(suite)
    ds = suite.prepare(mirror=mirror)
    results = suite.results_dir(results)
    progress = _Progress(echo, suite.protocol.main_metric)
    executed: set = set()
    while True:
        rows = survey(suite, results, only=only, force=force, executed=executed)
        todo = [r.job for r in rows if r.state in ("missing", "stale", "failed") and r.job.key not in executed]
        if not todo:
            break
        runner(suite, ds, todo, results=results, device=device or suite.device, force=force, on_done=progress,
               keep_going=keep_going)
        executed.update(j.key for j in todo)
    progress.counts["skipped"] += sum(1 for r in rows if r.state == "done" and r.job is not None
                                      and r.job.key not in executed)
    drop_search_checkpoints(rows)
    for r in rows:
        if r.state == "invalid":
            progress.counts["invalid"] += 1
            echo(f"[invalid] {r.job.describe()}: {r.reason}; remove it (or restore it) to run the job again")
    return progress.counts


def drop_search_checkpoints(rows) -> None:
    """A finished search run keeps its last checkpoint for the final run of the same
    configuration and seed (which then need not train again: ``runner._Job.trained_by_search``);
    once every final run of its entry is done, the checkpoints of its search runs go."""
    from ..runner import checkpoint_path

    open_entries = {r.entry for r in rows if r.stage == "final" and r.state != "done"}
    for r in rows:
        if r.stage == "search" and r.state == "done" and r.entry not in open_entries and r.path is not None:
            checkpoint_path(r.path).unlink(missing_ok=True)


def status(suite: Suite, results: Path | None = None) -> list[dict]:
    """One row per job: done / failed (with reason) / missing / waiting (for a search) /
    stale (a record of the same run chosen under another selection: run again) / invalid
    (unreadable), then one ``history`` row per earlier failed run kept beside it."""
    out = []
    for r in survey(suite, results):
        row = {"model": r.entry, "params_hash": r.params_hash[:8], "seed": r.seed, "stage": r.stage}
        out.append({**row, "state": r.state, "reason": r.reason})
        out += [{**row, "state": "history", "reason": f"{name}: failed earlier ({why})"} for name, why in r.history]
    return out
