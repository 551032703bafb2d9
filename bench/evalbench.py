"""Full-ranking evaluation side by side, on the same exact scores and split.

For one scale: check that every evaluator gives the same metrics as mmbench (to 1e-6),
then time them in interleaved rounds (median). Slow peers rank a fixed sample of the test
users; their full-pass time is the per-user time times the number of test users (each user
costs the same: one score row, one ranking).
"""
from __future__ import annotations

import gc
import os
import time

import numpy as np
import torch

from mmbench.evaluate.kernels import batch_users_for
from mmbench.evaluate.ranking import evaluate_ranking

import peers as P
from synth import Split

TOL = 1e-6


def test_sample(split: Split, n: int | None, seed: int = 0) -> tuple[Split, np.ndarray]:
    """The split with test rows kept for ``n`` random test users (all when None)."""
    users = np.unique(split.user[split.mask("test")])
    if n is None or n >= len(users):
        return split, users
    keep_users = np.sort(np.random.default_rng(seed).choice(users, n, replace=False))
    keep = np.zeros(split.n_users, bool)
    keep[keep_users] = True
    label = split.label.copy()
    label[(label == 2) & ~keep[split.user]] = 3
    return Split(split.name, split.n_users, split.n_items, split.user, split.item, label), keep_users


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def rss_now() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Reset the peak-RSS counter of this process (Linux: /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _compare(name: str, ours: dict, theirs: dict, names: list[str], per_user: bool) -> float:
    worst = 0.0
    for n in names:
        if n not in theirs:
            continue
        a, b = ours[n], theirs[n]
        d = float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if per_user else abs(float(a) - float(b))
        if not d <= TOL:
            raise AssertionError(f"{name}: {n} differs from mmbench by {d:.3g} (> {TOL})")
        worst = max(worst, d)
    return worst


def map_as_recbole(per_user: dict, n_rel: np.ndarray, names: list[str]) -> dict:
    """Our AP@k (divided by |rel|) in RecBole's/MMRec's convention (divided by min(|rel|, k))."""
    out = {}
    for n in names:
        if n.startswith("map@"):
            k = int(n.split("@")[1])
            out[n] = per_user[n] * n_rel / np.minimum(n_rel, k)
    return out


BUSY_CODE = "while True: pass"


class BusyProcess:
    """One other CPU-bound process for as long as the ``with`` block runs (started before it,
    killed after): what a machine shared with one busy job looks like."""

    def __enter__(self):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", BUSY_CODE])
        time.sleep(0.3)  # let it get going and the scheduler notice it
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def time_rounds(calls: dict, *, busy: bool, log=print) -> dict:
    """``{condition: {name: [seconds]}}``: each call of ``calls`` (name -> (fn, reps)) timed in
    interleaved rounds; with ``busy``, every round runs once quiet and once next to a
    :class:`BusyProcess` (the conditions alternate, so slow drifts of the machine hit both).
    The peers hold millions of Python objects (Cornac's and RecBole's data): a full garbage
    collection during a timed call would charge their traversal to whoever allocates, so (as
    timeit does) the collector runs first and stays off while a call is timed."""
    import contextlib

    gc.collect()
    gc.freeze()

    def timed(f) -> float:
        gc.collect()
        gc.disable()
        try:
            t = time.perf_counter()
            f()
            return time.perf_counter() - t
        finally:
            gc.enable()

    conds = ("quiet", "busy") if busy else ("quiet",)
    times = {c: {n: [] for n in calls} for c in conds}
    for r in range(max(reps for _, reps in calls.values())):
        for c in conds:
            with BusyProcess() if c == "busy" else contextlib.nullcontext():
                for n, (f, reps) in calls.items():
                    if r < reps:
                        times[c][n].append(timed(f))
            log(f"round {r + 1} {c}: " + ", ".join(f"{n} {v[-1]:.3f}s" for n, v in times[c].items() if v))
    return times


def pass_stats(seconds: list, users: int, n_full: int) -> dict:
    """Median of the timed calls, and the full pass it stands for (``users`` of ``n_full`` ranked)."""
    med = float(np.median(seconds))
    return {"seconds": [round(x, 4) for x in seconds], "median_s": round(med, 4), "users": int(users),
            "full_pass_s": round(med * n_full / users, 4), "extrapolated": users != n_full}


def run_scale(label: str, split: Split, scores, *, reps: int, sample: int | None, ours_reps: int | None = None,
              peers_on_sample=("recbole-default", "recbole-tuned", "cornac"), full_peers=("vectorised", "mmrec"),
              recbole_default_batch: int = 4096, log=print, memory: bool = False, torch_peers: bool = True,
              busy: bool = True) -> dict:
    names = P.names_for()
    ks = (10, 20)
    n_items = split.n_items
    bsz = batch_users_for(n_items)
    tuned = bsz * n_items  # RecBole counts scores, not users: the same block as ours
    full_users = np.unique(split.user[split.mask("test")])
    sub_split, sub_users = test_sample(split, sample)
    out = {"scale": label, "stats": split.stats(), "test_users": int(len(full_users)), "sample_users": int(len(sub_users)),
           "batch_users": bsz, "block_mib": round(bsz * n_items * 4 / 2**20, 1), "methods": {},
           "recbole_eval_batch_size": {"default": recbole_default_batch, "tuned": tuned}}
    ours_reps = ours_reps or reps

    def ours_full():
        return evaluate_ranking(scores, split, "test", names)

    # -- memory and correctness of ours (first, before any peer is loaded) -----------------
    gc.collect()
    base = rss_now()
    can_reset = reset_peak()
    gc.disable()
    t0 = time.perf_counter()
    ref_full = ours_full()
    first = time.perf_counter() - t0
    gc.enable()
    if memory:
        out["memory"] = {"rss_before": base, "rss_peak": rss_peak(), "peak_reset": can_reset,
                         "dense_matrix_bytes": int(len(full_users)) * n_items * 4,
                         "score_block_bytes": bsz * n_items * 4}
    log(f"[{label}] mmbench first pass {first:.2f}s (not timed: it builds the split's lists and layout once, "
        "as the peers' set-up does)")
    out["first_pass_s"] = round(first, 4)
    ref_sub = evaluate_ranking(scores, sub_split, "test", names) if sample else ref_full
    n_rel_full = np.diff(split.csr("test")[0])[ref_full.users].astype(float)
    n_rel_sub = np.diff(sub_split.csr("test")[0])[ref_sub.users].astype(float)
    out["metrics"] = {n: round(v, 6) for n, v in ref_full.metrics.items()}

    methods = {}  # name -> (callable, users evaluated)
    agree = {}

    # vectorised / MMRec-style (full users unless the scale asks otherwise)
    for peer in ("vectorised", "mmrec") if torch_peers else ():
        use_full = peer in full_peers
        sp, us, ref, nrel = (split, full_users, ref_full, n_rel_full) if use_full else \
            (sub_split, sub_users, ref_sub, n_rel_sub)
        fn = P.vectorised if peer == "vectorised" else P.mmrec_style
        f = (lambda fn=fn, sp=sp, us=us: fn(scores, sp, us, names, bsz))
        res = f()
        exp = dict(ref.per_user)
        if peer == "mmrec":
            exp.update(map_as_recbole(ref.per_user, nrel, names))
        agree[peer] = _compare(peer, exp, res, names, per_user=True)
        methods[peer] = (f, len(us))
        del res

    # RecBole (default and tuned eval_batch_size) and Cornac on the sample
    if not _importable("recbole"):
        log(f"[{label}] RecBole is not installed: skipped (pip install 'mmbench[bench]')")
        peers_on_sample = [p for p in peers_on_sample if not p.startswith("recbole")]
    if not _importable("cornac"):
        log(f"[{label}] Cornac is not installed: skipped (pip install 'mmbench[bench]')")
        peers_on_sample = [p for p in peers_on_sample if p != "cornac"]
    if "recbole-default" in peers_on_sample or "recbole-tuned" in peers_on_sample:
        t = time.perf_counter()
        sizes = {k: v for k, v in (("recbole-default", recbole_default_batch), ("recbole-tuned", tuned))
                 if k in peers_on_sample}
        first_size, *more = sizes.values()
        rb = P.RecBolePeer(sub_split, scores, test_users=sub_users if sample else None, eval_batch_size=first_size,
                           more_eval_batch_sizes=more)
        log(f"[{label}] RecBole set-up {time.perf_counter() - t:.1f}s (not timed)")
        for kind, ebs in sizes.items():
            f = (lambda ebs=ebs: rb.evaluate(ebs))
            res = f()
            exp = {n: float(np.mean(v)) for n, v in ref_sub.per_user.items()}
            exp.update({n: float(np.mean(v)) for n, v in map_as_recbole(ref_sub.per_user, n_rel_sub, names).items()})
            agree[kind] = _compare(kind, exp, res, names, per_user=False)
            methods[kind] = (f, len(sub_users))
    if "cornac" in peers_on_sample:
        t = time.perf_counter()
        cp = P.CornacPeer(sub_split, scores, test_users=sub_users if sample else None)
        log(f"[{label}] Cornac set-up {time.perf_counter() - t:.1f}s (not timed)")
        means, per = cp.evaluate()
        exp, got = {}, {}
        for n, (users, vals) in per.items():
            order = np.argsort(users)
            pos = np.searchsorted(ref_sub.users, users[order])
            assert np.array_equal(ref_sub.users[pos], users[order]), "cornac evaluated other users"
            exp[n], got[n] = ref_sub.per_user[n][pos], vals[order]
        agree["cornac"] = _compare("cornac", exp, got, list(per), per_user=True)
        methods["cornac"] = (cp.evaluate, len(sub_users))
    out["agreement_max_abs_diff"] = agree
    log(f"[{label}] agreement with mmbench (max |diff|): " + ", ".join(f"{k} {v:.1e}" for k, v in agree.items()))

    # -- timing: interleaved rounds, quiet and with one busy process ------------------------
    calls = {"mmbench": (ours_full, ours_reps), "bare bound": (lambda: P.bare_bound(scores, full_users, max(ks), bsz),
                                                              ours_reps)}
    calls.update({m: (f, reps) for m, (f, _) in methods.items()})
    times = time_rounds(calls, busy=busy, log=lambda msg: log(f"[{label}] {msg}"))
    n_full = len(full_users)
    for cond, by_method in times.items():
        stats = {m: pass_stats(ts, methods[m][1] if m in methods else n_full, n_full)
                 for m, ts in by_method.items() if ts}
        for d in stats.values():
            d["ratio_to_mmbench"] = round(d["full_pass_s"] / stats["mmbench"]["full_pass_s"], 3)
        for m, d in stats.items():
            if cond == "quiet":
                out["methods"][m] = d
            else:
                out["methods"][m]["busy"] = d
    out["busy_process"] = BUSY_CODE if busy else None
    out["threads"] = torch.get_num_threads()
    out["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "(default)")
    return out
