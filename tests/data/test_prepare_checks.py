"""What prepare refuses: explicit negatives without a threshold, statistics unlike the card's."""
from __future__ import annotations

import pytest

from mmbench.data.prepare import prepare
from mmbench.errors import DataError

from .formats.common import card, raw_pairs


def test_rating_zero_is_never_a_silent_positive(tmp_path, cards_dir):
    d = tmp_path / "n"
    d.mkdir()
    (d / "n.inter").write_text("userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t0\t0\n1\t0\t1\t0\n1\t1\t1\t2\n"
                               "0\t2\t1\t2\n1\t2\t0\t0\n")
    body = '[files]\ninteractions = "n.inter"\n[split]\nmethod = "preset"\ncolumn = "x_label"\n'
    c = card(cards_dir, "n", "mmrec", d, body)
    with pytest.raises(DataError, match=r"n.inter:3: 2 interactions have rating <= 0") as e:
        prepare(c)
    assert "min_rating" in str(e.value) and "--positive-threshold" in str(e.value)
    c = card(cards_dir, "n", "mmrec", d, body + "[filters]\nmin_rating = 1.0\n")
    ds = prepare(c)
    assert raw_pairs(ds) == [("0", "0"), ("0", "2"), ("1", "0"), ("1", "1")]  # dislikes gone
    assert ds.arrays["rating"].min() == 1


def test_card_stats_are_checked(tmp_path, cards_dir):
    d = tmp_path / "s"
    d.mkdir()
    (d / "s.inter").write_text("userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n1\t0\t1\t2\n")
    body = '[files]\ninteractions = "s.inter"\n[split]\nmethod = "preset"\ncolumn = "x_label"\n[stats]\n'
    assert prepare(card(cards_dir, "s", "mmrec", d, body + "users = 2\ntest_interactions = 2\n")).n_users == 2
    with pytest.raises(DataError, match=r"s.toml: prepared statistics differ .*test_interactions 2 != 3"):
        prepare(card(cards_dir, "s", "mmrec", d, body + "users = 2\ntest_interactions = 3\n"))
