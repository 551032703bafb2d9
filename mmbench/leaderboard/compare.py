"""Compare run records ranx-style: one row per model configuration (seeds averaged per
user); each cell's superscripts name the rows it is significantly better than (paired test
on per-user values, Holm-corrected over all pairs of each metric).

:func:`compare` returns a :class:`Report`; ``mmbench compare`` prints its :meth:`Report.table`
and :meth:`Report.legend`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MMBenchError

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SUPERSCRIPT = dict(zip(LETTERS, "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖᵠʳˢᵗᵘᵛʷˣʸᶻ"))


@dataclass
class ReportRow:
    letter: str
    label: str  # model name, with the params hash when the model appears with several configurations
    seeds: list[int]
    means: dict[str, float]  # test mean over seeds, per metric
    vectors: dict[str, np.ndarray] = field(repr=False)  # per-user values averaged over seeds
    better_than: dict[str, set[str]] = field(default_factory=dict)  # metric -> letters of significantly worse rows


@dataclass
class Report:
    metrics: list[str]
    rows: list[ReportRow]
    test: str
    alpha: float

    def table(self, fmt: str = "simple") -> str:
        """The table in a tabulate format (simple, github, latex, ...)."""
        from tabulate import tabulate

        body = []
        for r in self.rows:
            body.append([r.letter, r.label, len(r.seeds)] + [
                f"{r.means[m]:.4f}" + "".join(SUPERSCRIPT[x] for x in sorted(r.better_than.get(m, ())))
                if m in r.means else "-" for m in self.metrics])
        return tabulate(body, headers=["#", "Model", "Seeds"] + self.metrics, tablefmt=fmt, disable_numparse=True)

    def legend(self) -> str:
        from ..stats import TEST_NAMES

        return (f"Superscripts: significantly better than those rows ({TEST_NAMES[self.test]} on per-user values "
                f"averaged over seeds, Holm-corrected over all pairs, alpha = {self.alpha:g}).")


def collect(paths) -> list[tuple[Path, dict]]:
    """Final records named by ``paths`` (record files, or folders searched recursively)."""
    from ..records import iter_records, read_record, record_stage

    found = []
    for p in map(Path, paths):
        if p.is_dir():
            for path, rec in iter_records(p):
                if isinstance(rec, Exception):
                    raise rec
                if rec["status"] == "ok" and record_stage(rec) == "final":
                    found.append((path, rec))
        else:
            rec = read_record(p)
            if rec["status"] != "ok":
                raise MMBenchError("a failed run has no metrics to compare", where=str(p))
            if record_stage(rec) != "final":
                raise MMBenchError("a search record has no test metrics", where=str(p),
                                   hint="compare the final records (seed<N>.json)")
            found.append((p, rec))
    if len(found) < 2:
        raise MMBenchError(f"need at least two records to compare, got {len(found)}",
                           hint="name record files (seed<N>.json) or folders that hold them")
    return found


def _configurations(found: list[tuple[Path, dict]]) -> dict[tuple[str, str], list[tuple[Path, dict]]]:
    """The records by (model, params hash), after checking they share data and protocol."""
    ref_path, ref = found[0]
    for path, rec in found[1:]:
        for what, a, b in (("dataset fingerprint", ref["dataset"]["fingerprint"], rec["dataset"]["fingerprint"]),
                           ("protocol", ref["protocol_hash"], rec["protocol_hash"])):
            if a != b:
                raise MMBenchError(f"records are not comparable: {what} {b[:12]} differs from {a[:12]} of "
                                   f"{ref_path}", where=str(path))
    groups: dict[tuple[str, str], list] = {}
    for path, rec in found:
        groups.setdefault((rec["model"]["name"], rec["model"]["params_hash"]), []).append((path, rec))
    if len(groups) < 2:
        raise MMBenchError(f"need at least two records of different models or parameters, got {len(found)} of "
                           "one configuration", hint="name the records of the runs to compare")
    if len(groups) > len(LETTERS):
        raise MMBenchError(f"at most {len(LETTERS)} configurations can be compared at once, got {len(groups)}")
    return dict(sorted(groups.items()))


def _row(letter: str, label: str, members: list[tuple[Path, dict]], metrics: list[str]) -> ReportRow:
    from ..evaluate.metrics import get
    from ..records import read_per_user
    from ..stats import per_user_mean

    pu = [read_per_user(p) for p, _ in sorted(members, key=lambda x: x[1]["seed"])]
    vectors = {}
    for m in metrics:
        users_key = "rating_users" if get(m).kind == "rating" else "users"
        if all(m in z for z in pu):
            vectors[m] = per_user_mean([(z[users_key], z[m]) for z in pu])[1]
    means = {m: sum(r["metrics"]["test"][m] for _, r in members) / len(members)
             for m in metrics if all(m in r["metrics"]["test"] for _, r in members)}
    return ReportRow(letter, label, sorted(r["seed"] for _, r in members), means, vectors)


def compare(paths, metrics=(), *, test: str = "t-test", alpha: float = 0.05) -> Report:
    """Compare the final records under ``paths`` on ``metrics`` (default: the protocol's
    metrics, then its rating metrics, that the records have)."""
    from ..evaluate.metrics import higher_is_better
    from ..stats import compare_all

    found = collect(paths)
    groups = _configurations(found)
    ref = found[0][1]["metrics"]["test"]
    protocol = found[0][1]["protocol"]
    shown = list(metrics) or [m for m in protocol["metrics"] if m in ref]
    shown += [m for m in ([] if metrics else protocol["rating_metrics"]) if m in ref and m not in shown]
    per_model = {}
    for name, _ in groups:
        per_model[name] = per_model.get(name, 0) + 1
    rows = [_row(LETTERS[i], name if per_model[name] == 1 else f"{name} ({h[:8]})", members, shown)
            for i, ((name, h), members) in enumerate(groups.items())]
    for m in shown:
        vecs = {r.letter: r.vectors[m] for r in rows if m in r.vectors}
        if len(vecs) >= 2 and len({len(v) for v in vecs.values()}) == 1:
            for letter, worse in compare_all(vecs, test, alpha, higher_is_better(m)).items():
                rows[LETTERS.index(letter)].better_than[m] = worse
    return Report(shown, rows, test, alpha)
