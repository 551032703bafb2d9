"""HetRec 2011 Last.fm files: play counts as ratings, artist tags as text."""
from __future__ import annotations

from mmbench.data.prepare import prepare
from mmbench.features.inputs import item_texts

from .common import card, raw_pairs


def test_hetrec_lastfm_weight_is_rating_and_tags_make_text(tmp_path, cards_dir):
    d = tmp_path / "h"
    d.mkdir()
    (d / "user_artists.dat").write_text("userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n3\t51\t7\r\n"
                                        "3\t53\t1\r\n")
    (d / "artists.dat").write_text("id\tname\turl\tpictureURL\n51\tDuran Duran\tu\tp51.jpg\n52\tMorcheeba\tu\t\n"
                                   "53\tAir\tu\tp53.jpg\n", encoding="utf-8")
    (d / "tags.dat").write_bytes("tagID\ttagValue\r\n1\tpop\r\n2\tnew wave\r\n3\tm\xfasica\r\n".encode("latin-1"))
    (d / "user_taggedartists.dat").write_text("userID\tartistID\ttagID\tday\tmonth\tyear\n2\t51\t2\t1\t1\t2009\n"
                                              "3\t51\t1\t1\t1\t2009\n2\t51\t1\t1\t1\t2009\n3\t53\t3\t1\t1\t2010\n")
    c = card(cards_dir, "h", "hetrec-lastfm", d, '''[files]
interactions = "user_artists.dat"
items = "artists.dat"
tags = "tags.dat"
tagged = "user_taggedartists.dat"
[columns]
user = "userID"
item = "artistID"
rating = "weight"
[text]
fields = ["name", "tags"]
[split]
method = "random_loo"
''')
    ds = prepare(c)
    assert sorted(ds.arrays["rating"].tolist()) == [1, 7, 11690, 13883]  # listening counts kept as rating
    assert item_texts(ds, c) == ["Duran Duran. new wave, pop", "Morcheeba", "Air. música"]


def test_hetrec_min_rating_thresholds_play_counts(tmp_path, cards_dir):
    d = tmp_path / "h"
    d.mkdir()
    (d / "user_artists.dat").write_text("userID\tartistID\tweight\n1\t1\t50\n1\t2\t3\n1\t3\t80\n2\t1\t9\n2\t3\t99\n")
    c = card(cards_dir, "h2", "hetrec-lastfm", d, '[files]\ninteractions = "user_artists.dat"\n'
                                                  '[filters]\nmin_rating = 10.0\n[split]\nmethod = "random_loo"\n')
    ds = prepare(c)
    assert raw_pairs(ds) == [("1", "1"), ("1", "3"), ("2", "3")]
