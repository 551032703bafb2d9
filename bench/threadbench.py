"""Thread policy under load: ``mmbench run -m bpr -d ml-100k -p epochs=N`` as a user runs it,
under OpenMP's own default waiting (``OMP_WAIT_POLICY=""``), mmbench's default (passive, set
at ``import mmbench`` when the user set nothing) and active waiting, each on the machine as it
is and next to two busy processes (``python -c 'while True: pass'``, started before the run
and killed after). Wall time of the whole command (start-up, data, training, evaluation),
rounds interleaved, the load average before and after each.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLICIES = {"OpenMP default": "", "mmbench default (passive)": None, "active": "ACTIVE"}
BUSY = [sys.executable, "-c", "while True: pass"]


def _run_once(exe: str, epochs: int, policy: str | None, busy: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    hogs = [subprocess.Popen(BUSY) for _ in range(busy)]
    try:
        load = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="mmbench-threadbench-") as out:
            t = time.perf_counter()
            subprocess.run([exe, "run", "-m", "bpr", "-d", "ml-100k", "-p", f"epochs={epochs}", "--results", out],
                           env=env, check=True, capture_output=True)
            took = time.perf_counter() - t
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return {"seconds": round(took, 2), "load_before": load, "load_after": os.getloadavg()}


def compare(*, epochs: int = 5, reps: int = 2, log=print) -> dict:
    exe = str(Path(sys.executable).with_name("mmbench"))
    subprocess.run([exe, "prepare", "ml-100k"], check=True, capture_output=True)  # data cached before timing
    rows = {(p, b): [] for p in POLICIES for b in (0, 2)}
    for _ in range(reps):
        for (name, busy), runs in rows.items():
            runs.append(_run_once(exe, epochs, POLICIES[name], busy))
            log(f"  {name}, {busy} busy: {runs[-1]['seconds']:.1f} s")
    out = [{"policy": name, "busy": busy, "runs": runs, "median_s": statistics.median(r["seconds"] for r in runs)}
           for (name, busy), runs in rows.items()]
    return {"command": f"mmbench run -m bpr -d ml-100k -p epochs={epochs}", "reps": reps,
            "cores": len(os.sched_getaffinity(0)), "rows": out}


#: the suite-worker question: one job on every core, or one single-threaded job per core
JOB_MODELS = ("bpr", "lightgcn", "vbpr", "freedom")


def _run_job(exe: str, model: str, epochs: int, threads: int, out: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
    return subprocess.Popen([exe, "--threads", str(threads), "run", "-m", model, "-d", "ml-100k", "-p",
                             f"epochs={epochs}", "-p", f"patience={epochs}", "--results", out],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def jobs_or_threads(*, epochs: int = 10, reps: int = 2, log=print) -> dict:
    """Per model: the wall time of one ``mmbench run`` on every core (``--threads N``), of one
    on one thread, and of N single-threaded runs side by side (what ``suite run``'s workers
    do); 'throughput' = N x (one job on N threads) / (N jobs side by side): how much more work
    per second one thread per job gets out of the cores."""
    exe = str(Path(sys.executable).with_name("mmbench"))
    subprocess.run([exe, "prepare", "ml-100k"], check=True, capture_output=True)
    subprocess.run([exe, "features", "build-defaults", "-d", "ml-100k"], check=True, capture_output=True)
    n = len(os.sched_getaffinity(0))
    rows = []
    for model in JOB_MODELS:
        times = {"all_threads": [], "one_thread": [], "side_by_side": []}
        for _ in range(reps):
            for kind in times:
                with tempfile.TemporaryDirectory(prefix="mmbench-jobs-") as out:
                    t = time.perf_counter()
                    if kind == "side_by_side":
                        procs = [_run_job(exe, model, epochs, 1, f"{out}/{k}") for k in range(n)]
                    else:
                        procs = [_run_job(exe, model, epochs, n if kind == "all_threads" else 1, out)]
                    for p in procs:
                        if p.wait() != 0:
                            raise RuntimeError(p.stderr.read().decode()[-500:])
                    times[kind].append(round(time.perf_counter() - t, 2))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"model": model, "runs": times, "median_s": med,
                     "throughput": round(n * med["all_threads"] / med["side_by_side"], 2)})
        log(f"  {model}: {med} throughput x{rows[-1]['throughput']}")
    return {"command": f"mmbench run -m MODEL -d ml-100k -p epochs={epochs} -p patience={epochs}", "cores": n,
            "reps": reps, "rows": rows}
