"""MicroLens CSV files: pairs with timestamps, quoted titles."""
from __future__ import annotations

from mmbench.data.prepare import prepare
from mmbench.features.inputs import item_texts

from .common import card, raw_pairs


def test_microlens_csv_with_quoted_titles(tmp_path, cards_dir):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "pairs.csv").write_text("user,item,timestamp\n1,100,1000\n1,200,2000\n2,100,1500\n2,200,900\n")
    (d / "titles.csv").write_text('100,"Cats, dogs and ""friends"""\n200,Sunset\n')
    c = card(cards_dir, "mic", "microlens", d, '''[files]
interactions = "pairs.csv"
items = "titles.csv"
[text]
fields = ["title"]
[split]
method = "temporal_loo"
''')
    ds = prepare(c)
    assert raw_pairs(ds, "test") == [("1", "200"), ("2", "100")]
    assert item_texts(ds, c) == ['Cats, dogs and "friends"', "Sunset"]
