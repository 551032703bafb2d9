"""Ray's worker priority on a busy machine: how long a Ray task takes to import torch (what
every mmbench job on Ray does first), with Ray's default worker niceness (15) and with the
niceness mmbench's local Ray keeps (this process's), next to N busy processes.

    OMP_WAIT_POLICY=PASSIVE python bench/raynice.py [--busy 2] [--reps 2]

Prints one Markdown table; each cell is the median over ``reps`` fresh Ray instances (the
import runs in a fresh worker process each time). Nothing here is part of ``make bench``:
it starts Ray several times and needs Ray installed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

_CHILD = r"""
import os, time
from mmbench.backends import ray_init
ray = ray_init(None)

@ray.remote(num_cpus=1)
def job():
    t = time.perf_counter()
    import torch  # noqa: F401
    return time.perf_counter() - t, os.nice(0)

took, nice = ray.get(job.remote())
ray.shutdown()
print(f"{took:.3f} {nice}")
"""


def one(niceness: str | None) -> tuple[float, int]:
    env = dict(os.environ)
    env.pop("RAY_worker_niceness", None)
    if niceness is not None:
        env["RAY_worker_niceness"] = niceness
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    took, nice = out.stdout.split()[-2:]
    return float(took), int(nice)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--busy", type=int, default=2, help="busy processes beside the runs")
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    rows = {"Ray's default (niceness 15)": "15", "mmbench's local Ray (our niceness)": None}
    res: dict[str, dict[int, list]] = {k: {0: [], a.busy: []} for k in rows}
    load0 = os.getloadavg()
    for busy in (0, a.busy):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(1.0)
            for _ in range(a.reps):  # interleaved
                for label, nice in rows.items():
                    res[label][busy].append(one(nice))
        finally:
            for p in procs:
                p.kill()
    load1 = os.getloadavg()
    print(f"`import torch` in a Ray task, s (median of {a.reps}; {os.cpu_count()} cores; load before "
          f"{load0[0]:.1f}, after {load1[0]:.1f})\n")
    print(f"| workers | niceness | quiet | {a.busy} busy | {a.busy} busy / quiet |")
    print("|---|---|---|---|---|")
    for label in rows:
        q = statistics.median(t for t, _ in res[label][0])
        b = statistics.median(t for t, _ in res[label][a.busy])
        print(f"| {label} | {res[label][0][0][1]} | {q:.2f} | {b:.2f} | {b / q:.1f} |")


if __name__ == "__main__":
    main()
