"""Splitters: each returns an int8 label per interaction (0 train, 1 valid, 2 test).

All of them are deterministic functions of their inputs and seed: ties are broken by the
row order after id mapping, never by hash order.

``cold_items`` makes an item cold-start split: a seeded share of the items (``cold_share``)
gets no training interaction. The cold items are divided once, by the same draw, into
valid's and test's (``cold_valid_share`` of them to valid): every interaction of a valid
cold item is a validation interaction, every interaction of a test cold item a test one.
So early stopping and model selection, which read validation only, can select for cold
items without ever seeing one of test's as a relevant item. The warm items' interactions
are split by ``warm`` (any per-user method above, with the split's ``ratios`` and
``seed``) exactly as that method splits them on its own.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

TRAIN, VALID, TEST = 0, 1, 2


def _group_positions(user: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by ``order`` (grouped by user), position within user and user size."""
    u = user[order]
    counts = np.bincount(u)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(u)) - starts[u]
    return pos, counts[u]


def _ratio_counts(n: np.ndarray, ratios: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Valid/test counts per user, following RecBole's rule: floor(r * n), at least one
    when 0 < r * n < 1 as long as train keeps more than one interaction."""
    n_valid = np.floor(ratios[1] * n + 1e-9).astype(np.int64)
    n_test = np.floor(ratios[2] * n + 1e-9).astype(np.int64)
    n_train = n - n_valid - n_test
    for r, cnt in ((ratios[2], n_test), (ratios[1], n_valid)):
        bump = (cnt == 0) & (r * n > 0) & (n_train > 1)
        cnt[bump] += 1
        n_train[bump] -= 1
    return n_valid, n_test


def _label_by_position(user, order, ratios):
    pos, size = _group_positions(user, order)
    n_valid, n_test = _ratio_counts(size, ratios)
    n_train = size - n_valid - n_test
    lab_sorted = np.where(pos < n_train, TRAIN, np.where(pos < n_train + n_valid, VALID, TEST)).astype(np.int8)
    label = np.empty(len(user), dtype=np.int8)
    label[order] = lab_sorted
    return label


def split_random_ratio(user: np.ndarray, ratios: list[float], seed: int) -> np.ndarray:
    """Per user, shuffle that user's interactions (seeded) and cut train/valid/test by ratio."""
    rng = np.random.default_rng(seed)
    key = rng.permutation(len(user))
    order = np.lexsort((key, user))
    return _label_by_position(user, order, ratios)


def split_temporal_ratio(user: np.ndarray, timestamp: np.ndarray, ratios: list[float]) -> np.ndarray:
    """Per user, oldest interactions to train, newest to test (ties by row order)."""
    order = np.lexsort((np.arange(len(user)), timestamp, user))
    return _label_by_position(user, order, ratios)


def _leave_one_out(user: np.ndarray, order: np.ndarray) -> np.ndarray:
    pos, size = _group_positions(user, order)
    # last -> test, second last -> valid; users with fewer than 3 interactions keep them all
    # in train except the last, which is test when they have 2
    lab_sorted = np.full(len(user), TRAIN, dtype=np.int8)
    lab_sorted[(pos == size - 1) & (size >= 2)] = TEST
    lab_sorted[(pos == size - 2) & (size >= 3)] = VALID
    label = np.empty(len(user), dtype=np.int8)
    label[order] = lab_sorted
    return label


def split_temporal_loo(user: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Per user: the latest interaction is test, the one before is valid, the rest train."""
    order = np.lexsort((np.arange(len(user)), timestamp, user))
    return _leave_one_out(user, order)


def split_random_loo(user: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(len(user)), user))
    return _leave_one_out(user, order)


COLD_STREAM = 0xC01D  # the cold-item draw's generator stream, apart from the warm split's


def cold_items(split: dict, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The cold items of a ``cold_items`` split of ``n_items`` items: (valid's, test's), each
    sorted. ``round(cold_share * n_items)`` items are drawn uniformly without replacement by a
    generator seeded with (seed, :data:`COLD_STREAM`); the first ``round(cold_valid_share *
    n_cold)`` of the draw are valid's, the rest test's (halves round up)."""
    n_cold = int(np.floor(split["cold_share"] * n_items + 0.5))
    n_valid = int(np.floor(split["cold_valid_share"] * n_cold + 0.5))
    drawn = np.random.default_rng([int(split.get("seed", 0)), COLD_STREAM]).permutation(n_items)[:n_cold]
    return np.sort(drawn[:n_valid]), np.sort(drawn[n_valid:])


def split_cold_items(split: dict, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray | None,
                     where: str) -> np.ndarray:
    """Cold items' interactions to valid or test (:func:`cold_items`), the warm items' split by
    the method ``split["warm"]`` as it splits them alone."""
    valid_cold, test_cold = cold_items(split, int(item.max(initial=-1)) + 1)
    if len(test_cold) == 0:
        raise DataError(f"split.cold_share = {split['cold_share']} leaves test no cold item", where=where,
                        hint="raise split.cold_share or lower split.cold_valid_share")
    label = np.full(len(user), VALID, dtype=np.int8)
    label[np.isin(item, test_cold)] = TEST
    warm = ~np.isin(item, np.concatenate([valid_cold, test_cold]))
    label[warm] = make_split({**split, "method": split["warm"]}, user[warm], item[warm],
                             None if timestamp is None else timestamp[warm], None, where)
    return label


def make_split(split: dict, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray | None,
               preset: np.ndarray | None, where: str) -> np.ndarray:
    method = split["method"]
    seed = int(split.get("seed", 0))
    if method in ("temporal_ratio", "temporal_loo") and timestamp is None:
        raise DataError(f"split method {method!r} needs timestamps, but the data has none", where=where,
                        hint="use random_ratio or random_loo")
    if method == "random_ratio":
        return split_random_ratio(user, split["ratios"], seed)
    if method == "temporal_ratio":
        return split_temporal_ratio(user, timestamp, split["ratios"])
    if method == "temporal_loo":
        return split_temporal_loo(user, timestamp)
    if method == "random_loo":
        return split_random_loo(user, seed)
    if method == "cold_items":
        return split_cold_items(split, user, item, timestamp, where)
    if method == "preset":
        if preset is None:
            raise DataError(f"split method 'preset' needs a label column ({split.get('column')!r})", where=where)
        return preset.astype(np.int8)
    raise DataError(f"unknown split method {method!r}", where=where)
