"""The id rules, by hand: tokens, integers within int64, index ids under the catalogue limit."""
import numpy as np
import pytest

from mmbench.data.ids import MAX_INDEX, check_tokens, index_ids, integer_ids
from mmbench.errors import DataError


def test_integer_ids_only_for_ascii_decimals_within_int64():
    assert integer_ids(np.array(["10", "-2", "0"])).tolist() == [10, -2, 0]
    assert integer_ids(np.array([str(2 ** 63 - 1), str(-2 ** 63)])).tolist() == [2 ** 63 - 1, -2 ** 63]
    for odd in ("\u0661\u0662", "+5", " 5", "1_000", str(2 ** 63), "1.0", "", "\uff11"):
        assert integer_ids(np.array(["1", odd])) is None, odd


def test_index_ids_name_the_first_bad_line():
    where = lambda j: f"f.inter:{j + 2}"  # noqa: E731
    assert index_ids(np.array(["2", "0", "2"]), "itemID", where).tolist() == [2, 0, 2]
    cases = {"\u0663": "is not a non-negative integer in ASCII digits", "-1": "is not a non-negative integer",
             "07": "has leading zeros", str(MAX_INDEX): "is beyond the catalogue limit",
             "9" * 40: "is beyond the catalogue limit"}
    for bad, why in cases.items():
        with pytest.raises(DataError, match=rf"^f\.inter:3: field 'itemID': id '.*' {why}"):
            index_ids(np.array(["1", bad, "x"]), "itemID", where)
    assert index_ids(np.array([str(MAX_INDEX - 1)]), "itemID", where).tolist() == [MAX_INDEX - 1]


@pytest.mark.parametrize("bad,why", [("", "is empty"), ("  ", "is empty"), ("a\x00", "U\\+0000"), ("a\rb", "U\\+000D"),
                                     ("\x85", "U\\+0085"), ("a\u2028", "U\\+2028"), ("x" * 257, "has 257 characters")])
def test_tokens(bad, why):
    check_tokens(["u1", "caf\u00e9", "\u0661", "a b", "x" * 256], "user_id", str)
    with pytest.raises(DataError, match=rf"^1: field 'user_id': id .* {why}"):
        check_tokens(["ok", bad], "user_id", str)
