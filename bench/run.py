"""mmbench benchmarks: evaluation, training, memory and start-up, side by side with peers.

    python bench/run.py                 # everything (make bench): 32 min on 2 busy cores
                                        # (load 5-9); the Elec-scale passes are half of it
    python bench/run.py --quick         # small sizes, 3 repetitions (~10 min there)
    python bench/run.py --elec-reps 1   # one full Elec-scale pass of mmbench and of the bound
    python bench/run.py --only eval     # eval | train | zoo | threads | memory | cli (repeatable)
    python bench/run.py --no-busy       # evaluation timed only as the machine is

Every evaluation round is timed twice: as the machine is ("quiet") and next to one busy
process the benchmark starts and kills ("busy"); the load average is recorded before and after.

Each section runs in its own process (clean memory figures, no state shared between peers)
and writes JSON; this driver collects them into bench/results.json and bench/README.md.
Peers: RecBole 1.2.1 (extra ``recbole``) and Cornac (extra ``bench``); a missing peer is
reported and skipped.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

SECTIONS = {
    "eval": ["eval-ml100k", "eval-50k", "eval-elec"],
    "memory": ["eval-elec"],
    "train": ["train-ml100k", "train-1m"],
    "cli": ["cli"],
    "zoo": ["zoo-ml100k", "zoo-lfm2k"],
    "threads": ["threads", "jobs"],
}
ELEC = (192_403, 63_001, 8.78)  # Amazon Electronics (MMRec's 5-core): users, items, interactions per user
MID = (50_000, 20_000, 20.0)


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


# -- sections (each in its own process) -----------------------------------------------------------
def _ml100k():
    from mmbench.data.cards import find_card
    from mmbench.data.prepare import prepare
    from synth import from_prepared

    return from_prepared(prepare(find_card("ml-100k")))


def section_eval(name: str, args) -> dict:
    import evalbench
    from synth import ExactScores, synthetic_split

    reps = args.reps
    if name == "eval-ml100k":
        split = _ml100k()
        return evalbench.run_scale("ml-100k", split, ExactScores(split), reps=reps, sample=None, log=log,
                                   busy=args.busy)
    if name == "eval-50k":
        size = (10_000, 5_000, 20.0) if args.quick else MID
        split = synthetic_split(*size, seed=0)
        return evalbench.run_scale(f"synthetic {size[0]//1000}k x {size[1]//1000}k", split, ExactScores(split),
                                   reps=reps, sample=None if args.quick else args.peer_users, log=log, busy=args.busy)
    if name == "eval-elec":
        size = (20_000, ELEC[1], ELEC[2]) if args.quick else ELEC
        split = synthetic_split(*size, seed=0)
        scores = ExactScores(split)
        only_memory = bool(args.only) and set(args.only) <= {"memory"}
        return evalbench.run_scale(
            f"synthetic Amazon-Elec scale ({size[0]:,} x {size[1]:,})", split, scores,
            reps=0 if only_memory else reps, ours_reps=1 if only_memory else args.elec_reps,
            sample=args.elec_peer_users, full_peers=(), log=log, memory=True,
            peers_on_sample=() if only_memory else ("recbole-default", "recbole-tuned", "cornac"),
            torch_peers=not only_memory, busy=args.busy and not only_memory)
    raise ValueError(name)


def section_train(name: str, args) -> dict:
    import trainbench

    if name == "train-ml100k":
        split = _ml100k()
        cfg = trainbench.CONFIGS["ml-100k"]
    else:
        from synth import synthetic_split

        size = (10_000, 5_000, 20.0) if args.quick else MID
        split = synthetic_split(*size, seed=0)
        cfg = trainbench.CONFIGS["1m"]
    seeds = args.train_seeds if name == "train-ml100k" else args.train_seeds_1m
    return trainbench.compare(split, cfg, seeds=seeds, quick=args.quick, log=log)


def section_zoo(name: str, args) -> dict:
    import zoobench

    mirror = os.environ.get("MMBENCH_MIRROR") or str(ROOT.parent / "shared" / "data" / "lfm2k")
    dataset = "ml-100k" if name == "zoo-ml100k" else "lfm2k"
    import torch

    torch.set_num_threads(args.zoo_threads)  # as a suite worker trains (one thread per job, one job per core)
    return zoobench.zoo(dataset, mirror=None if dataset == "ml-100k" else mirror, models=args.zoo_models,
                        probe_epochs=2 if args.quick else 3, max_epochs=20 if args.quick else args.zoo_max_epochs,
                        budget_s=60 if args.quick else args.zoo_budget_s, log=log)


def section_cli(args) -> dict:
    exe = Path(sys.executable).with_name("mmbench")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "mmbench", "--help"]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(10):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    imp = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, check=True)
        imp.append(time.perf_counter() - t)
    return {"command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
            "seconds": [round(x, 4) for x in times], "median_s": round(statistics.median(times), 4),
            "python_import_torch_median_s": round(statistics.median(imp), 4)}


def run_section(name: str, args) -> dict:
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    if name.startswith("eval"):
        res = section_eval(name, args)
    elif name.startswith("train"):
        res = section_train(name, args)
    elif name.startswith("zoo"):
        res = section_zoo(name, args)
    elif name == "threads":
        import threadbench

        res = threadbench.compare(epochs=5 if args.quick else 20, reps=1 if args.quick else 2, log=log)
    elif name == "jobs":
        import threadbench

        res = threadbench.jobs_or_threads(epochs=3 if args.quick else 10, reps=1 if args.quick else 2, log=log)
    else:
        res = section_cli(args)
    res["section_seconds"] = round(time.perf_counter() - t0, 1)
    res["load_before"], res["load_after"] = load_before, os.getloadavg()
    return res


# -- driver ---------------------------------------------------------------------------------------
def machine() -> dict:
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = 0
    try:
        mem = int(next(ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))) * 1024
    except (OSError, StopIteration):
        pass
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for p in ("numpy", "recbole", "cornac", "ray"):
        try:
            from importlib.metadata import version

            versions[p] = version(p)
        except Exception:  # noqa: BLE001
            pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem / 2**30, 1),
            "torch_threads": torch.get_num_threads(), "versions": versions}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and 3 repetitions")
    ap.add_argument("--only", action="append", choices=sorted(SECTIONS) + sorted({n for v in SECTIONS.values() for n in v}),
                    help="run only this part or section (repeatable)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per method (default 5; quick 3)")
    ap.add_argument("--elec-reps", type=int, default=3, help="repetitions of the two full Elec-scale passes")
    ap.add_argument("--peer-users", type=int, default=2000,
                    help="test users ranked by RecBole/Cornac at the 50k scale (time scaled to all users)")
    ap.add_argument("--elec-peer-users", type=int, default=500, help="the same at Elec scale (all peers)")
    ap.add_argument("--train-seeds", type=int, default=None, help="seeds per trainer on ml-100k (default 5; quick 2)")
    ap.add_argument("--train-seeds-1m", type=int, default=None, help="the same on 1M interactions (default 3; quick 2)")
    ap.add_argument("--zoo-models", nargs="+", help="Training the zoo: only these models (default: every ranking model)")
    ap.add_argument("--zoo-max-epochs", type=int, default=200, help="Training the zoo: epoch cap of the full runs")
    ap.add_argument("--zoo-threads", type=int, default=1,
                    help="Training the zoo: torch threads per model (default 1, as `suite run`'s workers)")
    ap.add_argument("--zoo-budget-s", type=float, default=300.0,
                    help="Training the zoo: a model whose probe predicts more than this for the capped run is probed only")
    ap.add_argument("--no-busy", dest="busy", action="store_false",
                    help="time the evaluators only as the machine is (default: also next to one busy process)")
    ap.add_argument("--malloc-default", action="store_true",
                    help="run every section with glibc's default malloc (MMBENCH_MALLOC=default) instead of "
                         "mmbench's, which keeps freed memory for reuse (mmbench.threads; see README)")
    ap.add_argument("--omp-active", action="store_true",
                    help="keep OpenMP's default busy-waiting (default here: OMP_WAIT_POLICY=PASSIVE, see README)")
    ap.add_argument("--out", type=Path, default=HERE, help="where results.json and README.md go")
    ap.add_argument("--section", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.reps = args.reps or (3 if args.quick else 5)
    args.train_seeds = args.train_seeds or (2 if args.quick else 5)
    args.train_seeds_1m = args.train_seeds_1m or (2 if args.quick else 3)
    if args.section:  # child process
        res = run_section(args.section, args)
        args.json.write_text(json.dumps(res, indent=1))
        return 0
    names = []
    for part in args.only or ["eval", "train", "zoo", "threads", "cli"]:
        names += [n for n in SECTIONS.get(part, [part]) if n not in names]
    env = dict(os.environ)
    if not args.omp_active:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    env.setdefault("PYTHONWARNINGS", "ignore")
    if args.malloc_default:
        env["MMBENCH_MALLOC"] = "default"
    else:
        env.pop("MMBENCH_MALLOC", None)
    results = {"started": _dt.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:],
               "machine": machine(), "load_before": os.getloadavg(), "omp_wait_policy": env.get("OMP_WAIT_POLICY"),
               "malloc": "glibc default" if args.malloc_default else "keeps freed memory (mmbench's default)",
               "sections": {}}
    prev = args.out / "results.json"
    base = None
    if prev.exists() and args.only:  # a partial run adds to / replaces sections of the previous figures
        base = json.loads(prev.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    command = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    took = 0.0
    for name in names:
        log(f"== {name}")
        out = args.out / f".{name}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--json", str(out)] + \
            [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("--omp-active",)]
        proc = subprocess.run(cmd, env=dict(os.environ) if name == "threads" else env, cwd=str(ROOT))
        if proc.returncode != 0 or not out.exists():
            log(f"!! {name} failed (exit {proc.returncode})")
            results["sections"][name] = {"error": f"exit {proc.returncode}"}
        else:
            key = name + (" (OpenMP default waiting)" if args.omp_active else "")
            results["sections"][key] = json.loads(out.read_text())
            out.unlink()
        took = write_results(args.out, results, base, t0, command)  # after each section: a killed run keeps them
    log(f"wrote {args.out / 'README.md'} ({took:.0f}s)")
    return 0


def write_results(out_dir: Path, results: dict, base: dict | None, t0: float, command: str) -> float:
    """results.json and README.md from the sections run so far. A partial run (``base``: the
    previous figures) replaces the sections it ran; one that failed keeps its previous figures
    and is listed as failed. Returns the seconds taken so far."""
    import report

    results["load_after"] = os.getloadavg()
    results["total_seconds"] = took = round(time.perf_counter() - t0, 1)
    results["command"] = command
    merged = results
    if base is not None:
        run = {k: results[k] for k in ("command", "started", "load_before", "load_after", "total_seconds",
                                        "omp_wait_policy", "malloc")}
        failed = [k for k, v in results["sections"].items() if "error" in v and k in base["sections"]]
        run["sections"] = [k for k in results["sections"] if k not in failed]
        run["failed"] = failed
        merged = json.loads(json.dumps(base))
        merged.setdefault("partial_runs", []).append(run)
        merged["sections"].update({k: v for k, v in results["sections"].items() if k not in failed})
    for name, text in (("results.json", json.dumps(merged, indent=1)), ("README.md", report.render(merged))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out_dir / name)
    return took


if __name__ == "__main__":
    sys.exit(main())
