"""Minor page faults and CPU time of mmbench's full-ranking pass against the bare bound (the
model's scoring + ``torch.topk``), with mmbench's malloc settings (freed memory kept for
reuse: :mod:`mmbench.threads`) or glibc's default. Run from the repo root:

    OMP_WAIT_POLICY=PASSIVE python bench/pagefaults.py [--malloc-default] [10k|50k|elec]

Each figure is the fastest of three passes after a first one that builds the split's layout.
"""
import argparse
import os
import resource
import sys
import time
from pathlib import Path

SCALES = {"10k": (10_000, 5_000, 20.0), "50k": (50_000, 20_000, 20.0), "elec": (192_403, 63_001, 8.78)}


def measure(f, n: int = 3) -> tuple[float, float, float, int]:
    """(wall s, user s, system s, minor faults) of the fastest of ``n`` calls of ``f``."""
    out = []
    for _ in range(n):
        r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        f()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        out.append((time.perf_counter() - t, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime,
                    r1.ru_minflt - r0.ru_minflt))
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scale", nargs="?", default="50k", choices=sorted(SCALES))
    ap.add_argument("--malloc-default", action="store_true", help="glibc's default malloc (MMBENCH_MALLOC=default)")
    args = ap.parse_args()
    if args.malloc_default:
        os.environ["MMBENCH_MALLOC"] = "default"  # before mmbench is imported
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    import peers as P
    from synth import ExactScores, synthetic_split

    from mmbench.evaluate.ranking import default_batch_users, evaluate_ranking
    from mmbench.threads import malloc_state

    split = synthetic_split(*SCALES[args.scale], seed=0)
    scores, names = ExactScores(split), P.names_for()
    users = np.unique(split.user[split.mask("test")])
    bsz = default_batch_users(split.n_items)
    evaluate_ranking(scores, split, "test", names)  # builds the layout
    print(f"{args.scale}: malloc {malloc_state()}; load before {os.getloadavg()}")
    for name, f in (("mmbench", lambda: evaluate_ranking(scores, split, "test", names)),
                    ("bare bound", lambda: P.bare_bound(scores, users, 20, bsz))):
        wall, user, system, faults = measure(f)
        print(f"{name:10s} wall {wall:.2f} s  user {user:.2f} s  system {system:.2f} s  minor faults {faults}")
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
