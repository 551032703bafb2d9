"""Statistics of leaderboards: intervals over seeds, paired tests, Holm correction."""
import itertools
import math

import numpy as np
import pytest

from mmbench.errors import ConfigError
from mmbench.stats import (against_best, compare_all, fisher_randomization, holm, paired_pvalue, per_user_mean,
                           summarize)


def test_summary_hand_computed():
    s = summarize([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.std == pytest.approx(1.0) and s.n == 3
    # Student t with 2 degrees of freedom has a closed form: t_p = (2p - 1) / sqrt(2 p (1 - p))
    t = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.3027
    half = t * 1.0 / math.sqrt(3)
    assert s.ci_low == pytest.approx(2 - half, abs=1e-12) and s.ci_high == pytest.approx(2 + half, abs=1e-12)
    one = summarize([0.25])
    assert (one.mean, one.std, one.ci_low, one.ci_high) == (0.25, 0.0, 0.25, 0.25)
    wider = summarize([1.0, 2.0, 3.0], confidence=0.99)
    assert wider.ci_high - wider.ci_low > s.ci_high - s.ci_low


def test_holm_hand_computed():
    # sorted p: 0.005 (x4) 0.01 (x3) 0.03 (x2) 0.04 (x1) -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, 0.9]).tolist() == pytest.approx([0.4, 0.9])
    assert holm([0.6, 0.9]).tolist() == [1.0, 1.0]  # capped at 1, monotone
    assert holm([]).tolist() == []


def test_paired_t_test_hand_computed():
    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 1.0, 2.0]
    # d = [1, 0, 2, 2]: mean 1.25, sd sqrt(2.75 / 3), t = 1.25 / (sd / 2) = 2.6112, df 3
    t = 1.25 / (math.sqrt(2.75 / 3) / 2)
    from scipy import stats

    assert t == pytest.approx(2.6112, abs=1e-4)
    assert paired_pvalue(a, b, "t-test") == pytest.approx(2 * stats.t.sf(t, 3), rel=1e-12)
    assert paired_pvalue(a, b, "t-test") == pytest.approx(paired_pvalue(b, a, "t-test"))


def test_degenerate_pairs():
    x = np.array([0.1, 0.5, 0.3])
    for test in ("t-test", "wilcoxon", "fisher"):
        assert paired_pvalue(x, x, test) == 1.0  # identical runs: no evidence of a difference
    assert paired_pvalue(x + 0.2, x, "t-test") == 0.0  # constant shift: no variance, certain difference
    with pytest.raises(ConfigError, match="unknown significance test"):
        paired_pvalue(x, x, "z-test")


def test_nan_users_are_left_out_pairwise():
    a = np.array([0.9, 0.8, np.nan, 0.7, 0.95, 0.85])
    b = np.array([0.1, 0.2, 0.5, np.nan, 0.15, 0.05])
    keep = np.isfinite(a) & np.isfinite(b)
    assert paired_pvalue(a, b) == pytest.approx(paired_pvalue(a[keep], b[keep]))


def _exact_randomization(d):
    """Every one of the 2^n sign flips: the exact two-sided p-value."""
    obs = abs(np.mean(d))
    stats = [abs(np.mean(np.array(s) * d)) for s in itertools.product((-1, 1), repeat=len(d))]
    return np.mean(np.array(stats) >= obs - 1e-12)


def test_fisher_matches_exact_enumeration_and_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    a = rng.random(10)
    b = a - 0.08 + rng.normal(0, 0.12, 10)
    exact = _exact_randomization(a - b)
    ours = fisher_randomization(a - b, n_resamples=20000)
    assert ours == pytest.approx(exact, abs=0.012)
    ref = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                 permutation_type="samples", n_resamples=20000).pvalue
    assert ours == pytest.approx(ref, abs=0.015)
    # seeded: the same bytes on a rebuild
    assert fisher_randomization(a - b) == fisher_randomization(a - b)


def test_wilcoxon_and_fisher_see_a_planted_difference():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    better = base + 0.05 + rng.normal(0, 0.05, 300)
    same = base + rng.normal(0, 0.05, 300)
    for test in ("t-test", "wilcoxon", "fisher"):
        assert paired_pvalue(better, base, test) < 1e-3
        assert paired_pvalue(same, base, test) > 0.01


def test_against_best_holm_and_marks():
    rng = np.random.default_rng(1)
    best = rng.random(400) + 0.2
    close = best - 0.002 + rng.normal(0, 0.05, 400)  # not distinguishable
    weak = best - 0.1 + rng.normal(0, 0.05, 400)
    out = against_best({"best": best, "close": close, "weak": weak}, "best")
    assert set(out) == {"close", "weak"}
    assert out["weak"].significant and not out["close"].significant
    raw = [out["close"].p, out["weak"].p]
    assert [out["close"].p_holm, out["weak"].p_holm] == pytest.approx(holm(raw).tolist())


def test_compare_all_direction_follows_the_metric():
    rng = np.random.default_rng(2)
    a = rng.random(200)
    b = a + 0.1
    assert compare_all({"a": a, "b": b}) == {"a": set(), "b": {"a"}}
    # for an error (lower is better) the smaller one wins
    assert compare_all({"a": a, "b": b}, higher_is_better=False) == {"a": {"b"}, "b": set()}


def test_per_user_mean_over_seeds():
    users = np.array([3, 5, 9])
    u, m = per_user_mean([(users, np.array([0.0, 1.0, 0.5])), (users, np.array([1.0, 1.0, np.nan]))])
    assert u.tolist() == [3, 5, 9]
    assert m[:2].tolist() == [0.5, 1.0] and np.isnan(m[2])
    with pytest.raises(ValueError, match="different users"):
        per_user_mean([(users, np.zeros(3)), (users + 1, np.zeros(3))])
