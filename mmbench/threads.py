"""How many threads a computing command uses, how idle threads wait, and whether freed memory
is kept for reuse.

With OpenMP's default spin-waiting, a torch job on a machine busier than its cores runs
7-9x slower (threads spin for cores they cannot get; see ``bench/README.md``). So mmbench
asks OpenMP for *passive* waiting unless the user chose a policy (``OMP_WAIT_POLICY``, set
at ``import mmbench``, before torch starts its thread pool), and runs as many intra-op
threads as the cores this process may use (its CPU affinity, capped by its cgroup's CPU
quota), unless the user set ``OMP_NUM_THREADS``, ``MMBENCH_THREADS`` or ``mmbench
--threads``. Both end up in every run record (``env.threads``, ``env.omp_wait_policy``).

glibc's malloc returns large freed blocks to the system and maps them again on the next
allocation, so every batch's score block is page-faulted in anew: on a 50k x 20k full
ranking pass that was 340k-510k minor faults and 0.6-1.4 s of system time (of 3.9-5.1 s),
most of the gap to the bare scoring + top-k bound (``bench/README.md``). At ``import
mmbench`` (:func:`keep_freed_memory_by_default`) malloc is told to keep freed memory for
reuse (``mallopt``: mmap threshold 32 MiB, glibc's largest, and trim threshold 1 GiB),
unless the user tuned malloc (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``) or set ``MMBENCH_MALLOC=default``; the record notes it
(``env.malloc``). Numbers do not depend on it, only where blocks live. Nothing here
imports torch.
"""
from __future__ import annotations

import ctypes
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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1 << 30
_MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_malloc_state = "default"


def keep_freed_memory_by_default() -> str:
    """Ask glibc's malloc to keep freed memory for reuse (see the module doc); returns what
    :func:`malloc_state` will say. Does nothing off glibc, or where the user chose."""
    global _malloc_state
    if os.environ.get("MMBENCH_MALLOC", "") == "default" or any(v in os.environ for v in _MALLOC_VARS):
        _malloc_state = "default (the user's choice)"
        return _malloc_state
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: mallopt's parameters differ elsewhere
    except (OSError, AttributeError):
        return _malloc_state
    if libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _malloc_state = f"keeps freed memory (mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold " \
                        f"{TRIM_THRESHOLD >> 20} MiB)"
    return _malloc_state


def malloc_state() -> str:
    """How this process's malloc treats freed memory: ``default`` or what mmbench set."""
    return _malloc_state


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

    return {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or "default",
            "malloc": malloc_state()}
