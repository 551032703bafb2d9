"""Where independent jobs run: in this process, in a local process pool, or as Ray tasks.

A job is a picklable callable without arguments (a top-level function, or
``functools.partial`` of one); :func:`execute` returns the results in job order. Workers
write their own outputs (run records), so a backend only moves small results back.

- ``local``: a process pool sized to the machine (``spawn``: no fork after OpenMP/CUDA
  start), by default one single-threaded worker per core; with fewer workers each runs
  ``cores // workers`` torch threads, so workers x threads never exceeds the cores. One
  worker means the jobs run here, in this process.
- ``ray``: one Ray task per job (``pip install 'mmbench[ray]'``); ``address`` joins a
  cluster (results must then be on a shared file system), else a local instance bound to
  127.0.0.1 without dashboard, whose workers keep this process's priority (Ray's default
  niceness of 15 starves them on a busy machine). Each task asks for one GPU when
  ``device`` is CUDA.

Nothing here imports torch or ray at module import.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence

from .errors import ConfigError
from .threads import usable_cores

BACKENDS = ("local", "ray")
# environment a worker needs to find the same data, cards and caches as this process
_ENV_KEYS = ("MMBENCH_HOME", "MMBENCH_CARDS", "MMBENCH_MIRROR", "NUMBA_CACHE_DIR", "HF_HUB_OFFLINE",
             "TRANSFORMERS_OFFLINE", "CUBLAS_WORKSPACE_CONFIG", "OMP_WAIT_POLICY")


def pool_size(n_jobs: int, workers: int | None = None, device: str = "cpu") -> tuple[int, int]:
    """(workers, torch threads per worker). Default: one single-threaded worker per core, at
    most one per job; a single worker on CUDA (the jobs share the device). The models of the
    boards are small: with passive waiting one thread trains them as fast as two or faster,
    so two single-threaded jobs side by side do 2.2-2.7x the work of one job on both cores
    (``mmbench run`` of 10 epochs on ml-100k, 2 cores, quiet: BPR 2.21x, LightGCN 2.67x,
    VBPR 2.20x, FREEDOM 2.19x; bench/README.md, "One job on every core")."""
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    n = usable_cores()
    if workers is None:
        workers = 1 if str(device).startswith("cuda") else n
    workers = max(1, min(workers, n_jobs, n))
    return workers, max(1, n // workers)


def _init_worker(threads: int, env: dict) -> None:
    os.environ.update(env)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(threads)
    os.environ["MMBENCH_TORCH_THREADS"] = str(threads)


def _call(job: Callable[[], Any]) -> Any:
    threads = os.environ.get("MMBENCH_TORCH_THREADS")
    if threads and "torch" in sys.modules:  # else torch reads OMP_NUM_THREADS when imported
        torch = sys.modules["torch"]
        if torch.get_num_threads() != int(threads):
            torch.set_num_threads(int(threads))
    return job()


def _env() -> dict:
    return {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}


def execute(jobs: Sequence[Callable[[], Any]], *, backend: str = "local", workers: int | None = None,
            address: str | None = None, device: str = "cpu",
            on_result: Callable[[int, Any], None] | None = None) -> list:
    """Run every job; return their results in job order. ``on_result(i, result)`` is called
    in this process as each job finishes (in completion order). A job that raises stops the
    run: pending jobs are cancelled and the exception is raised here."""
    jobs = list(jobs)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
    if not jobs:
        return []
    if backend == "ray":
        return _execute_ray(jobs, address=address, device=device, workers=workers, on_result=on_result)
    if address is not None:
        raise ConfigError("--address is only for the ray backend", hint="add --backend ray")
    n_workers, threads = pool_size(len(jobs), workers, device)
    results: list = [None] * len(jobs)
    if n_workers == 1:
        for i, job in enumerate(jobs):
            results[i] = job()
            if on_result:
                on_result(i, results[i])
        return results
    import multiprocessing as mp

    with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(threads, _env())) as pool:
        futures = {pool.submit(_call, job): i for i, job in enumerate(jobs)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in sorted(done, key=futures.get):
                    i = futures[f]
                    results[i] = f.result()  # re-raises a job's exception
                    if on_result:
                        on_result(i, results[i])
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return results


def ray_init(address: str | None = None):
    """Connect to ``address`` or start a local Ray (127.0.0.1 only, no dashboard)."""
    if not address:
        # Older Ray (e.g. 2.6.3, which recbole pins) turns 127.0.0.1 into the host's routable
        # address and listens on all interfaces unless it believes it runs single-node (this
        # switch, read when ray is imported); newer Ray binds the node address it is given.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray starts its workers at niceness 15: on a machine that other jobs keep busy they
        # then get a few percent of a core (measured here: importing torch in a worker took
        # 49 s instead of 1.6 s with two busy processes on two cores). A run is the job the
        # user asked for, not background work, so the local Ray we start keeps our priority
        # (the raylet reads this when it starts; RAY_worker_niceness set by the user wins).
        os.environ.setdefault("RAY_worker_niceness", str(_own_niceness()))
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray", hint="pip install 'mmbench[ray]', or use --backend local") \
            from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            consts = getattr(getattr(ray, "_private", None), "ray_constants", None)
            if consts is not None and getattr(consts, "ENABLE_RAY_CLUSTER", False) \
                    and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
                consts.ENABLE_RAY_CLUSTER = False  # ray was imported before the switch was set
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=usable_cores(), log_to_driver=False,
                     configure_logging=False)
    return ray


def _own_niceness() -> int:
    try:
        return os.nice(0)
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return 0


def _execute_ray(jobs, *, address, device, workers, on_result):
    ray = ray_init(address)
    gpu = str(device).startswith("cuda")
    n_workers, threads = pool_size(len(jobs), workers, "cpu")
    task = ray.remote(num_gpus=1 if gpu else 0, num_cpus=threads, max_retries=0)(_ray_call)
    env = _env()
    refs = [task.remote(job, threads, env) for job in jobs]
    index = {r: i for i, r in enumerate(refs)}
    results: list = [None] * len(jobs)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for r in done:
                results[index[r]] = ray.get(r)  # re-raises a task's exception
                if on_result:
                    on_result(index[r], results[index[r]])
    except BaseException:
        for r in pending:
            ray.cancel(r)
        raise
    return results


def _ray_call(job, threads: int, env: dict):
    _init_worker(threads, env)
    return _call(job)
