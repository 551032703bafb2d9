"""Interaction filters: rating threshold, duplicates, iterative k-core."""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .formats import Interactions


def drop_duplicates(inter: Interactions, policy: str) -> Interactions:
    """Duplicate (user, item) pairs: an error by default, or keep the first/last (by time, then line)."""
    key = np.char.add(np.char.add(inter.user.astype(str), "\t"), inter.item.astype(str))  # tab never occurs in a field
    ts = inter.timestamp if inter.timestamp is not None else np.zeros(len(inter))
    order = np.lexsort((inter.line, ts, key))
    k = key[order]
    dup_next = np.concatenate([k[1:] == k[:-1], [False]])
    if not dup_next.any():
        return inter
    if policy == "error":
        j = int(np.argmax(dup_next))
        part = inter.part if inter.part is not None else np.zeros(len(inter), dtype=np.int8)
        a, b = sorted((int(order[j]), int(order[j + 1])), key=lambda r: (part[r], inter.line[r]))
        at = f"lines {inter.line[a]} and {inter.line[b]}" if part[a] == part[b] else f"{inter.where(a)} and here"
        raise DataError(f"duplicate (user, item) pair {str(inter.user[a])!r}, {str(inter.item[a])!r} at {at} "
                        f"({int(dup_next.sum())} duplicates in all)", where=inter.where(b),
                        hint="set filters.duplicates = 'keep_first' or 'keep_last' in the card")
    if policy == "keep_last":
        keep_sorted = ~dup_next
    else:  # keep_first
        keep_sorted = ~np.concatenate([[False], k[1:] == k[:-1]])
    return inter.take(np.sort(order[keep_sorted]))


def min_rating(inter: Interactions, threshold: float) -> Interactions:
    """Keep interactions with rating >= threshold (explicit negatives are never positives)."""
    if inter.rating is None:
        raise DataError("filters.min_rating is set but the data has no rating column", where=inter.source)
    return inter.take(np.flatnonzero(inter.rating >= threshold))


def k_core(user: np.ndarray, item: np.ndarray, user_core: int, item_core: int) -> np.ndarray:
    """Indices of rows kept by iterative k-core filtering (ids already integer-coded)."""
    keep = np.arange(len(user))
    while True:
        u, i = user[keep], item[keep]
        ok = np.ones(len(keep), dtype=bool)
        if user_core > 1:
            ok &= np.bincount(u)[u] >= user_core
        if item_core > 1:
            ok &= np.bincount(i)[i] >= item_core
        if ok.all():
            return keep
        keep = keep[ok]
        if len(keep) == 0:
            return keep
