"""Re-running committed records: does the number still come out of the code that claims it?

:func:`reproduce` draws ``sample`` of a suite's accepted final records with a generator
seeded by ``seed`` (so a failure can be replayed), runs each again in a temporary folder
with the record's own model, parameters, seed, selection and device and the thread count
it notes (``env.threads``: floating-point reductions depend on it), and compares: every
metric (valid and test), the training history (loss and validation value of each epoch,
best epoch and value) and the per-user vectors must be bit-identical.

Records are drawn only among those that can run here within a budget: their features are
in the prepared dataset, their device exists, and (``max_seconds``) their recorded fit +
evaluation time is small enough (a final record that reused its search's model counts the
training it reused); the report says how many were left out and why. A suite
whose data cannot be prepared here is skipped with the reason.
"""
from __future__ import annotations

import contextlib
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MMBenchError
from ..protocol import RANKING
from .select import load_records


@dataclass
class Outcome:
    record: str  # path under the results folder
    status: str  # identical | differs | failed
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    suite: str
    seed: int
    skipped: str = ""  # why the suite was not reproduced here
    finals: int = 0
    eligible: int = 0
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> number of records
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status == "identical" for o in self.outcomes)


def _device(rec: dict) -> str:
    return str(rec["env"].get("device", "cpu")).split(" ")[0]


def _why_not(rec: dict, available: set[str], max_seconds: float | None) -> str | None:
    """Why a record cannot be drawn here (None: it can)."""
    if rec["protocol"].get("metrics") and rec["env"].get("ranking") != RANKING:  # a rating-only record ranks nothing
        return "ranked ties in another order than this mmbench (rerun at the record's commit)"
    missing = sorted(set(rec["features"]) - available)
    if missing:
        return f"needs features not prepared here ({', '.join(missing)})"
    if _device(rec).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return "ran on a GPU"
    if max_seconds is not None and rerun_seconds(rec) > max_seconds:
        return f"takes more than {max_seconds:g} s"
    return None


def rerun_seconds(rec: dict) -> float:
    """What running ``rec`` again costs, as recorded: its fit + evaluation time. A final
    record that reused the model its search trained (``fit.reused``) notes only the reload as
    its fit time, yet a rerun trains again: its epochs times their recorded seconds count."""
    t, fit = rec.get("timing") or {}, rec.get("fit") or {}
    trained = float(fit.get("epochs_run") or 0) * float(fit.get("seconds_per_epoch") or 0.0)
    return max(float(t.get("fit_s", 0.0)), trained) + float(t.get("eval_s", 0.0))


@contextlib.contextmanager
def _threads(n: int | None):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n or before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def difference(old: dict, new: dict, old_users: dict, new_users: dict) -> str | None:
    """The first way the rerun ``new`` differs from the record ``old`` (None: bit-identical)."""
    for split in sorted(set(old["metrics"]) | set(new["metrics"])):
        a, b = old["metrics"].get(split, {}), new["metrics"].get(split, {})
        for m in sorted(set(a) | set(b)):
            if a.get(m) != b.get(m):
                return f"metrics.{split}.{m}: recorded {a.get(m)}, now {b.get(m)}"
    fa, fb = old.get("fit") or {}, new.get("fit") or {}
    for k in ("best_epoch", "epochs_run", "best_valid", "history"):
        if fa.get(k) != fb.get(k):
            return f"fit.{k} differs (recorded {str(fa.get(k))[:60]}, now {str(fb.get(k))[:60]})"
    for k in sorted(set(old_users) | set(new_users)):
        if k not in old_users or k not in new_users or not np.array_equal(old_users[k], new_users[k], equal_nan=True):
            return f"per-user values of {k} differ"
    return None


def _rerun(suite, ds, results: Path, rel: str, rec: dict) -> Outcome:
    from ..records import read_per_user
    from ..runner import run_one

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmbench-reproduce-") as tmp, _threads(rec["env"].get("threads")):
        try:
            new, path, _ = run_one(rec["model"]["name"], ds, params=rec["model"]["params"], seed=rec["seed"],
                                   device=_device(rec), protocol=suite.protocol, results=Path(tmp), suite=suite.name,
                                   selection=rec["selection"], feature_keys=sorted(rec["features"]))
            why = difference(rec, new, read_per_user(results / rel), read_per_user(path))
        except MMBenchError as e:
            return Outcome(rel, "failed", str(e), time.perf_counter() - t0)
    return Outcome(rel, "differs" if why else "identical", why or "", time.perf_counter() - t0)


def reproduce(suite, results: Path | None = None, *, sample: int = 2, seed: int = 0,
              max_seconds: float | None = None, mirror: str | None = None) -> Report:
    """Re-run ``sample`` final records of ``suite`` drawn at random (``seed``) and compare."""
    results = suite.results_dir(results)
    found = load_records(suite, results)
    finals = sorted((rel, rec) for g in found.finals.values() for rel, rec in g)
    report = Report(suite.name, seed, finals=len(finals))
    try:
        ds = suite.prepare(mirror=mirror)
    except MMBenchError as e:
        report.skipped = f"its data is not available here ({e})"
        return report
    available = set(ds.features.keys())
    eligible = []
    for rel, rec in finals:
        why = _why_not(rec, available, max_seconds)
        if why:
            report.left_out[why] = report.left_out.get(why, 0) + 1
        else:
            eligible.append((rel, rec))
    report.eligible = len(eligible)
    drawn = random.Random(seed).sample(eligible, min(sample, len(eligible)))
    report.outcomes = [_rerun(suite, ds, results, rel, rec) for rel, rec in sorted(drawn, key=lambda x: x[0])]
    return report
