"""The rating track shows, bounds and tests one statistic: each user's error on their
held-out ratings, averaged over users (rules 2)."""
import numpy as np
import pytest
from scipy import stats

from mmbench import leaderboard as lbm
from mmbench.records import read_per_user, read_record
from mmbench.suite import load_suite, run_suite

RATING = '''[suite]
name = "rating"
version = 1
track = "fixed-budget"

[dataset]
name = "toy"
version = "1"

[protocol]
metrics = []
main_metric = "rmse"
rating_metrics = ["rmse", "mae"]

[run]
seeds = [0, 1, 2]
device = "cpu"

[[models]]
name = "mf"
label = "small"
params = { embedding_dim = 2, epochs = 3, patience = 5, batch_size = 128 }

[[models]]
name = "mf"
label = "large"
params = { embedding_dim = 16, epochs = 3, patience = 5, batch_size = 128 }
'''


def test_rating_cells_ci_and_test_share_the_per_user_statistic(trust, tmp_path):
    (tmp_path / "rating").mkdir()
    (tmp_path / "rating" / "suite.toml").write_text(RATING)
    suite = load_suite(tmp_path / "rating")
    results = tmp_path / "results"
    run_suite(suite, results=results, workers=1, echo=lambda *_: None)
    lb = lbm.build(suite, results)
    assert lb.rejected == [] and len(lb.rows) == 2
    vectors = {}
    for r in lb.rows:
        files = [read_per_user(results / rel) for rel in r.records]
        per_seed = [float(np.mean(z["rmse"])) for z in files]  # each user's RMSE, averaged over users
        shown = r.test["rmse"]
        assert shown.mean == pytest.approx(np.mean(per_seed), abs=1e-12)
        assert shown.std == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
        half = stats.t.ppf(0.975, 2) * np.std(per_seed, ddof=1) / np.sqrt(3)
        assert (shown.ci_low, shown.ci_high) == pytest.approx((np.mean(per_seed) - half, np.mean(per_seed) + half))
        pairs = [read_record(results / rel)["metrics"]["test"]["rmse"] for rel in r.records]
        assert not np.allclose(pairs, per_seed)  # the records' RMSE over all pairs is another quantity
        vectors[r.key] = np.mean([z["rmse"] for z in files], axis=0)
        assert float(np.mean(vectors[r.key])) == pytest.approx(shown.mean, abs=1e-12)  # the tested vector's mean
    best = next(r for r in lb.rows if "rmse" in r.best)
    other = next(r for r in lb.rows if r is not best)
    assert best.test["rmse"].mean < other.test["rmse"].mean  # lower is better, on the shown statistic
    p = stats.ttest_rel(vectors[other.key], vectors[best.key]).pvalue
    assert other.marks["rmse"].p == pytest.approx(p, rel=1e-9)
    md = lbm.to_markdown(lb, suite)
    assert "RMSE and MAE: each user's error on their held-out ratings, averaged over users" in md
    assert f"{best.test['rmse'].mean:.4f} ± {best.test['rmse'].std:.4f}" in md
