"""RecBole atomic files shipped as a split (train/valid/test files)."""
from __future__ import annotations

from mmbench.data.prepare import prepare

from .common import card, raw_pairs


def test_recbole_split_files_give_a_preset_split(tmp_path, cards_dir):
    d = tmp_path / "r"
    d.mkdir()
    head = "user_id:token\titem_id:token\trating:float\n"
    (d / "r.train.inter").write_text(head + "a\tx\t4\na\ty\t5\nb\tx\t3\n")
    (d / "r.valid.inter").write_text(head + "b\ty\t2\n")
    (d / "r.test.inter").write_text(head + "a\tz\t1\nb\tz\t5\n")
    c = card(cards_dir, "r", "recbole", d, '[files]\ntrain = "r.train.inter"\nvalid = "r.valid.inter"\n'
                                           'test = "r.test.inter"\n[split]\nmethod = "preset"\ncolumn = "file"\n')
    ds = prepare(c)
    assert raw_pairs(ds, "valid") == [("b", "y")]
    assert raw_pairs(ds, "test") == [("a", "z"), ("b", "z")]
