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
