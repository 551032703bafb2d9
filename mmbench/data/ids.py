"""User and item ids as files give them: one rule for every format, checked where they are read.

* A **token** (any id) is 1 to :data:`MAX_TOKEN_CHARS` characters, not only blanks, without a
  control character (Unicode Cc: NUL, tab, CR, ...) or a line/paragraph separator: it is written
  to an id map and read back unchanged, and two ids never collapse into one.
* An id is read **as an integer** only when it is an ASCII decimal integer (an optional ``-``,
  then digits ``0-9``) within int64: ``'١٢'``, ``'+5'``, ``' 5'``, ``'1_000'`` or ``2**63`` stay
  tokens and sort as text.
* An **index** id (MMRec's user and item ids, a feature file's row) is a non-negative ASCII
  decimal without leading zeros and below :data:`MAX_INDEX`, the stated catalogue limit: a
  larger one would make mmbench allocate a catalogue beyond memory.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from ..errors import DataError

MAX_TOKEN_CHARS = 256
MAX_INDEX = 100_000_000  # users or items per catalogue (index ids 0 .. MAX_INDEX - 1)
_INT = re.compile(r"-?[0-9]{1,19}")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def token_problem(value: str) -> str | None:
    """Why ``value`` is not a valid token id, or None."""
    bad = _CONTROL.search(value)
    if bad:
        return f"holds the control character U+{ord(bad.group()):04X}"
    if not value.strip():
        return "is empty"
    if len(value) > MAX_TOKEN_CHARS:
        return f"has {len(value)} characters (at most {MAX_TOKEN_CHARS})"
    return None


def check_tokens(values: list[str], field: str, origin: Callable[[int], str]) -> None:
    """Every value a valid token id, else a DataError naming the first bad one's ``origin(j)`` and ``field``."""
    bad = {v for v in set(values) if token_problem(v)}
    if bad:
        j = next(j for j, v in enumerate(values) if v in bad)
        raise DataError(f"field {field!r}: id {values[j][:60]!r} {token_problem(values[j])}", where=origin(j),
                        hint="ids are text without control characters; fix or remove the line")


def integer_ids(values: np.ndarray) -> np.ndarray | None:
    """The int64 value of each id when every one is an ASCII decimal integer within int64, else None."""
    vals = values.tolist()
    if not all(_INT.fullmatch(v) for v in vals):
        return None
    nums = [int(v) for v in vals]
    if any(not -2 ** 63 <= n < 2 ** 63 for n in nums):
        return None
    return np.asarray(nums, dtype=np.int64)


def index_problem(value: str) -> str | None:
    """Why ``value`` is not a valid index id, or None."""
    if not _INDEX.fullmatch(value):
        if re.fullmatch(r"[0-9]+", value):
            return "has leading zeros"
        return "is not a non-negative integer in ASCII digits"
    if len(value) > 9 or int(value) >= MAX_INDEX:
        return f"is beyond the catalogue limit (ids 0..{MAX_INDEX - 1:,})"
    return None


def index_ids(values: np.ndarray, field: str, origin: Callable[[int], str], hint: str = "") -> np.ndarray:
    """The int64 index of each id; the first invalid one (in ``values`` order) is a DataError naming
    ``origin(j)`` and ``field``."""
    uniq, inv = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    problems = [index_problem(v) for v in uniq.tolist()]
    bad = np.asarray([p is not None for p in problems], dtype=bool)
    if bad.any():
        j = int(np.flatnonzero(bad[inv])[0])
        k = int(inv[j])
        raise DataError(f"field {field!r}: id {str(uniq[k])[:60]!r} {problems[k]}", where=origin(j),
                        hint=hint or None)
    return np.asarray([int(v) for v in uniq.tolist()], dtype=np.int64)[inv.reshape(-1)]
