import numpy as np

from mmbench.data.filters import k_core
from mmbench.data.splits import (TEST, TRAIN, VALID, split_random_loo, split_random_ratio, split_temporal_loo,
                                 split_temporal_ratio)


def _users(sizes):
    return np.repeat(np.arange(len(sizes)), sizes)


def test_random_ratio_counts_follow_recbole_rule():
    user = _users([10, 20, 5, 2, 1])
    lab = split_random_ratio(user, [0.8, 0.1, 0.1], seed=3)
    per = {u: np.bincount(lab[user == u], minlength=3).tolist() for u in range(5)}
    assert per[0] == [8, 1, 1]
    assert per[1] == [16, 2, 2]
    assert per[2] == [3, 1, 1]  # 0.5 valid/test rounds up to one each while train keeps > 1
    assert per[3] == [1, 0, 1]  # train would drop to 1: valid stays empty
    assert per[4] == [1, 0, 0]


def test_random_ratio_is_seeded():
    user = _users([30] * 20)
    a = split_random_ratio(user, [0.8, 0.1, 0.1], seed=1)
    b = split_random_ratio(user, [0.8, 0.1, 0.1], seed=1)
    c = split_random_ratio(user, [0.8, 0.1, 0.1], seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_temporal_loo_takes_latest_for_test_and_previous_for_valid():
    user = np.array([0, 0, 0, 0, 1, 1, 2])
    ts = np.array([5, 1, 9, 3, 7, 2, 1])
    lab = split_temporal_loo(user, ts)
    assert lab.tolist() == [VALID, TRAIN, TEST, TRAIN, TEST, TRAIN, TRAIN]


def test_temporal_ratio_puts_newest_in_test():
    user = _users([10])
    ts = np.arange(10)[::-1].copy()
    lab = split_temporal_ratio(user, ts, [0.8, 0.1, 0.1])
    assert lab[0] == TEST and lab[1] == VALID and (lab[2:] == TRAIN).all()


def test_random_loo_one_each():
    user = _users([5, 5])
    lab = split_random_loo(user, seed=0)
    for u in (0, 1):
        assert np.bincount(lab[user == u], minlength=3).tolist() == [3, 1, 1]


def test_k_core_is_iterative():
    # item 2 has 1 interaction -> removed; then user 1 drops to 1 -> removed; then item 1 drops -> ...
    user = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    item = np.array([0, 1, 3, 1, 2, 0, 1, 3])
    keep = k_core(user, item, 2, 2)
    kept = set(zip(user[keep].tolist(), item[keep].tolist()))
    assert kept == {(0, 0), (0, 1), (0, 3), (2, 0), (2, 1), (2, 3)}
    assert (np.bincount(user[keep])[np.unique(user[keep])] >= 2).all()
