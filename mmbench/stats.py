"""Statistics for leaderboards: spread over seeds and paired tests on per-user vectors.

- :func:`summarize`: mean, sample std and a Student-t confidence interval over seeds.
- :func:`paired_pvalue`: two-sided paired test of two per-user metric vectors: paired
  t-test and Wilcoxon signed-rank (scipy), Fisher's randomization test (sign flips from a
  seeded numpy Generator, so a rebuild gives the same bytes; checked against scipy's
  ``permutation_test`` in the tests).
- :func:`holm`: Holm's step-down correction of a family of p-values.
- :func:`against_best`: every model against the best one on a metric, Holm-corrected.
- :func:`compare_all`: all pairs (the ``mmbench compare`` table), Holm-corrected per metric.

Users for whom a metric is undefined (NaN, e.g. no relevant cold-start item) are left out
of a comparison pairwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

TESTS = ("t-test", "wilcoxon", "fisher")
FISHER_RESAMPLES = 10_000
FISHER_SEED = 0
TEST_NAMES = {"t-test": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test",
              "fisher": f"Fisher randomization test ({FISHER_RESAMPLES:,} sign flips)"}


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # sample std (ddof=1); 0 for one value
    n: int
    ci_low: float  # Student-t interval of the mean; equal to the mean for one value
    ci_high: float

    @property
    def ci_half(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def summarize(values, confidence: float = 0.95) -> Summary:
    from scipy import stats

    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no values to summarize")
    mean = float(a.mean())
    if a.size == 1:
        return Summary(mean, 0.0, 1, mean, mean)
    std = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, a.size - 1)) * std / math.sqrt(a.size)
    return Summary(mean, std, int(a.size), mean - half, mean + half)


def _check_test(test: str) -> None:
    if test not in TESTS:
        raise ConfigError(f"unknown significance test {test!r}", hint=f"use one of {', '.join(TESTS)}")


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in length: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def paired_pvalue(a, b, test: str = "t-test", *, n_resamples: int = FISHER_RESAMPLES,
                  seed: int = FISHER_SEED) -> float:
    """Two-sided p-value that the per-user vectors ``a`` and ``b`` (same users, same order)
    have the same mean. Identical vectors give 1.0."""
    from scipy import stats

    _check_test(test)
    a, b = _paired(a, b)
    d = a - b
    if d.size < 2 or not np.any(d != 0):
        return 1.0
    if test == "t-test":
        if np.allclose(d, d[0]):  # constant non-zero difference: no variance, a certain difference
            return 0.0
        return float(stats.ttest_rel(a, b).pvalue)
    if test == "wilcoxon":
        return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    return fisher_randomization(d, n_resamples=n_resamples, seed=seed)


def fisher_randomization(d: np.ndarray, *, n_resamples: int = FISHER_RESAMPLES, seed: int = FISHER_SEED) -> float:
    """Fisher's paired randomization test on the differences ``d``: under H0 each user's
    difference is as likely to have the other sign. Two-sided Monte-Carlo p-value with the
    usual +1 correction (as scipy's ``permutation_test``), sign flips drawn from a seeded
    numpy Generator in blocks (scipy's generic version is ~15x slower here)."""
    d = np.asarray(d, dtype=np.float64)
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    block = max(1, min(n_resamples, (1 << 18) // max(1, d.size)))  # ~2 MB of float signs per block
    extreme, done = 0, 0
    tol = 1e-12 * max(1.0, observed)  # ties with the observed statistic count as extreme
    while done < n_resamples:
        n = min(block, n_resamples - done)
        signs = rng.integers(0, 2, size=(n, d.size), dtype=np.int8).astype(np.float64) * 2 - 1
        stats_ = np.abs(signs @ d) / d.size
        extreme += int(np.count_nonzero(stats_ >= observed - tol))
        done += n
    return (extreme + 1) / (n_resamples + 1)


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given), monotone and capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


@dataclass(frozen=True)
class Comparison:
    p: float  # raw two-sided p-value against the reference
    p_holm: float  # Holm-corrected over the family (all models compared with the same reference)
    significant: bool  # p_holm < alpha


def against_best(vectors: dict[str, np.ndarray], best: str, test: str = "t-test",
                 alpha: float = 0.05) -> dict[str, Comparison]:
    """Compare every entry of ``vectors`` with ``vectors[best]`` (paired per user)."""
    _check_test(test)
    others = [k for k in vectors if k != best]
    raw = [paired_pvalue(vectors[k], vectors[best], test) for k in others]
    adj = holm(raw) if raw else []
    return {k: Comparison(p, float(q), bool(q < alpha)) for k, p, q in zip(others, raw, adj)}


def compare_all(vectors: dict[str, np.ndarray], test: str = "t-test", alpha: float = 0.05,
                higher_is_better: bool = True) -> dict[str, set[str]]:
    """For each entry, the set of entries it is significantly better than (all pairs, Holm
    over the family of pairs). Used for ranx-style superscript marks."""
    _check_test(test)
    names = list(vectors)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    raw = [paired_pvalue(vectors[a], vectors[b], test) for a, b in pairs]
    adj = holm(raw) if raw else []
    better: dict[str, set[str]] = {n: set() for n in names}
    for (a, b), q in zip(pairs, adj):
        if q >= alpha:
            continue
        x, y = _paired(vectors[a], vectors[b])
        diff = float(np.mean(x - y))
        if diff == 0:
            continue
        winner, loser = (a, b) if (diff > 0) == higher_is_better else (b, a)
        better[winner].add(loser)
    return better


def per_user_mean(runs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Average per-user vectors of several seeds: ``[(users, values), ...]`` -> (users, mean).

    Seeds of one configuration share the users (same split); users missing from a seed are
    an error rather than silently dropped."""
    users = runs[0][0]
    stack = []
    for u, v in runs:
        if not np.array_equal(u, users):
            raise ValueError("per-user vectors of the seeds cover different users")
        stack.append(np.asarray(v, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return users, np.mean(np.stack(stack), axis=0)
