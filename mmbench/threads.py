"""How many threads a computing command uses, and how idle threads wait.

With OpenMP's default spin-waiting, a torch job on a machine busier than its cores runs
7-9x slower (threads spin for cores they cannot get; see ``bench/README.md``). So mmbench
asks OpenMP for *passive* waiting unless the user chose a policy (``OMP_WAIT_POLICY``, set
at ``import mmbench``, before torch starts its thread pool), and runs as many intra-op
threads as the cores this process may use (its CPU affinity, capped by its cgroup's CPU
quota), unless the user set ``OMP_NUM_THREADS``, ``MMBENCH_THREADS`` or ``mmbench
--threads``. Both end up in every run record (``env.threads``, ``env.omp_wait_policy``).
Nothing here imports torch.
"""
from __future__ import annotations

import os
import sys

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def passive_wait_by_default() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the user set it (an empty value keeps OpenMP's own
    default). Only effective before the OpenMP runtime starts, i.e. before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> int | None:
    """The CPU quota of this process's control group in whole cores (rounded up), or None
    when there is none: cgroup v2 ``cpu.max`` ("200000 100000" = 2 cores, "max ..." = none),
    else cgroup v1 ``cpu/cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (quota -1 = none).
    A container started with ``--cpus=2`` on a 64-core host sees 64 cores in its affinity
    but gets the time of 2; 64 threads there would wait for each other."""
    def read(path: str) -> list[str] | None:
        try:
            with open(os.path.join(root, path), encoding="ascii") as f:
                return f.read().split()
        except (OSError, UnicodeDecodeError):
            return None

    v2 = read("cpu.max")
    if v2:
        quota, period = v2[0], v2[1] if len(v2) > 1 else "100000"
    else:
        q, p = read("cpu/cpu.cfs_quota_us"), read("cpu/cpu.cfs_period_us")
        if not q or not p:
            return None
        quota, period = q[0], p[0]
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, -(-quota_us // period_us))


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        n = max(1, os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return min(n, limit) if limit else n


def configure(threads: int | None = None) -> int:
    """Set this process's thread count: ``threads`` if given (overrides everything), else
    ``OMP_NUM_THREADS`` if the user set it, else the usable cores. Returns the count."""
    if threads is not None:
        if threads < 1:
            from .errors import ConfigError

            raise ConfigError(f"--threads must be >= 1, got {threads}")
        n = threads
    else:
        user = os.environ.get("OMP_NUM_THREADS", "")
        n = int(user) if user.isdigit() and int(user) > 0 else usable_cores()
    for var in _THREAD_VARS:
        if threads is not None or var not in os.environ:
            os.environ[var] = str(n)
    if "torch" in sys.modules:  # already started: tell it directly
        sys.modules["torch"].set_num_threads(n)
    return n


def describe() -> dict:
    """What the run record says about threading."""
    import torch

    return {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or "default"}
