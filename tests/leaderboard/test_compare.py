"""``compare`` as a library: a report whose means and significance marks are recomputed here
from the committed records with NumPy and SciPy alone."""
import json
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from mmbench.errors import MMBenchError
from mmbench.leaderboard.compare import compare

from ..conftest import ROOT

RECORDS = ROOT / "leaderboards" / "ml100k" / "records" / "ml100k" / "ml-100k"
MODELS = ("pop", "lightgcn", "freedom")


def _seeds(model: str):
    """(test metrics, per-user npz) of each final record of ``model``, by seed."""
    out = []
    for path in sorted((RECORDS / model).glob("*/seed?.json")):
        with np.load(path.with_name(path.stem + ".per_user.npz")) as z:
            out.append((json.loads(path.read_text())["metrics"]["test"], {k: z[k] for k in z.files}))
    return out


def _holm_marks(vectors: dict[str, np.ndarray], alpha: float) -> dict[str, set[str]]:
    pairs = list(combinations(sorted(vectors), 2))
    p = np.array([stats.ttest_rel(vectors[a], vectors[b]).pvalue for a, b in pairs])
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    marks = {k: set() for k in vectors}
    for (a, b), q in zip(pairs, adjusted):
        if q < alpha:
            winner, loser = (a, b) if vectors[a].mean() > vectors[b].mean() else (b, a)
            marks[winner].add(loser)
    return marks


def test_report_means_and_marks_recomputed_from_the_records():
    report = compare([RECORDS / m for m in MODELS], ["ndcg@10", "recall@20/tail"])
    assert [r.label for r in report.rows] == sorted(MODELS) and [r.letter for r in report.rows] == ["a", "b", "c"]
    assert report.metrics == ["ndcg@10", "recall@20/tail"]
    letter = {r.label: r.letter for r in report.rows}
    for metric in report.metrics:
        vectors = {}
        for r in report.rows:
            seeds = _seeds(r.label)
            assert r.seeds == [0, 1, 2]
            assert r.means[metric] == pytest.approx(np.mean([t[metric] for t, _ in seeds]), abs=1e-12)
            vectors[r.letter] = np.mean([pu[metric] for _, pu in seeds], axis=0)
        if metric == "ndcg@10":  # no NaN: the plain paired t-test of SciPy applies as is
            assert {r.letter: r.better_than[metric] for r in report.rows} == _holm_marks(vectors, 0.05)
    assert report.rows[0].better_than["ndcg@10"] >= {letter["pop"]}  # freedom beats pop
    table = report.table("github").splitlines()
    assert [c.strip() for c in table[0].split("|")[1:-1]] == ["#", "Model", "Seeds", "ndcg@10", "recall@20/tail"]
    for r, line in zip(report.rows, table[2:]):
        assert [c.strip() for c in line.split("|")[1:4]] == [r.letter, r.label, "3"]
        assert f"{r.means['ndcg@10']:.4f}" in line
    assert "paired t-test" in report.legend() and "alpha = 0.05" in report.legend()


def test_records_of_one_configuration_are_refused():
    with pytest.raises(MMBenchError, match="at least two records of different models"):
        compare([RECORDS / "pop"])
