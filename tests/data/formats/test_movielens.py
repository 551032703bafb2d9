"""Raw GroupLens MovieLens files: the ml-100k and ml-1m layouts."""
from __future__ import annotations

from mmbench.data.prepare import prepare
from mmbench.features.inputs import item_texts

from .common import card, raw_pairs


def test_movielens_raw_100k_and_1m_layouts(tmp_path, cards_dir):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "u.data").write_text("1\t10\t5\t100\n1\t20\t3\t101\n2\t10\t4\t102\n2\t20\t1\t103\n")
    flags = ["0"] * 19
    f10, f20 = list(flags), list(flags)
    f10[3] = f10[5] = "1"  # Animation, Comedy
    f20[8] = "1"  # Drama
    (d / "u.item").write_bytes(("10|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(f10) + "\n"
                                "20|Caf\xe9, The (1994)|01-Jan-1994||http://y|" + "|".join(f20) + "\n")
                               .encode("latin-1"))
    c = card(cards_dir, "ml", "movielens-raw", d, '''[files]
interactions = "u.data"
items = "u.item"
[text]
fields = ["movie_title", "release_year", "class"]
template = "{movie_title} ({release_year}). Genres: {class}."
[split]
method = "temporal_loo"
''')
    ds = prepare(c)
    assert ds.arrays["rating"].tolist() == [5, 3, 4, 1]
    assert raw_pairs(ds, "test") == [("1", "20"), ("2", "20")]  # latest of each user
    assert item_texts(ds, c) == ["Toy Story (1995). Genres: Animation Comedy.", "Café, The (1994). Genres: Drama."]

    d1 = tmp_path / "ml1m"
    d1.mkdir()
    (d1 / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978300275\n")
    (d1 / "movies.dat").write_bytes("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant "
                                    "Peach (1996)::Animation|Children's|Musical\n".encode("latin-1"))
    c1 = card(cards_dir, "ml1", "movielens-raw", d1, '[files]\ninteractions = "ratings.dat"\nitems = "movies.dat"\n'
                                                    '[text]\nfields = ["movie_title", "class"]\n'
                                                    '[split]\nmethod = "temporal_loo"\n')
    ds1 = prepare(c1)
    assert ds1.item_raw_ids() == ["661", "1193"]
    assert item_texts(ds1, c1) == ["James and the Giant Peach. Animation Children's Musical",
                                   "One Flew Over the Cuckoo's Nest. Drama"]
    assert ds1.stats["raw"] == {"interactions": 3, "users": 2, "items": 2}
