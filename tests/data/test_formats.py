"""Readers beyond RecBole's atomic .inter: MMRec, MovieLens raw, HetRec Last.fm, MicroLens, split files;
item text from cards; derived features (genre multi-hot, KG)."""
from __future__ import annotations

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import DataError
from mmbench.features.inputs import item_texts

CARD_HEAD = '''[dataset]
name = "{name}"
version = "1"
title = "t"
license = "test"
format = "{fmt}"
modalities = ["interactions"]

[[sources]]
name = "local"
path = "{path}"
'''


def card(cards_dir, name, fmt, data_dir, body):
    p = cards_dir / f"{name}.toml"
    p.write_text(CARD_HEAD.format(name=name, fmt=fmt, path=data_dir.as_posix()) + body, encoding="utf-8")
    return find_card(name)


def raw_pairs(ds, split=None):
    users, items = ds.user_raw_ids(), ds.item_raw_ids()
    m = np.ones(len(ds.arrays["user"]), bool) if split is None else ds.mask(split)
    return sorted((users[u], items[i]) for u, i in zip(ds.arrays["user"][m], ds.arrays["item"][m]))


# ----------------------------------------------------------------------------- MMRec
def test_mmrec_untyped_header_preset_split_and_row_aligned_features(tmp_path, cards_dir):
    d = tmp_path / "m"
    d.mkdir()
    # rows deliberately not sorted; item 3 only in test
    rows = [(1, 2, 0), (0, 0, 0), (0, 1, 0), (1, 0, 1), (0, 3, 2), (1, 1, 2), (2, 2, 0), (2, 1, 2)]
    (d / "m.inter").write_text("userID\titemID\trating\tx_label\n" +
                               "".join(f"{u}\t{i}\t1\t{lab}\n" for u, i, lab in rows))
    feats = np.arange(4 * 3, dtype=np.float64).reshape(4, 3) * 1.5  # row i = item i
    np.save(d / "f.npy", feats)
    c = card(cards_dir, "m", "mmrec", d, '''[files]
interactions = "m.inter"
[columns]
user = "userID"
item = "itemID"
label = "x_label"
[features]
"image/f" = "f.npy"
[split]
method = "preset"
column = "x_label"
''')
    ds = prepare(c)
    assert raw_pairs(ds, "test") == [("0", "3"), ("1", "1"), ("2", "1")]
    assert raw_pairs(ds, "valid") == [("1", "0")]
    f = ds.features.get("image/f")
    for idx, raw in enumerate(ds.item_raw_ids()):
        assert np.array_equal(f.values[idx], feats[int(raw)].astype(np.float32))
    assert ds.manifest["features"] == {"image/f": f.fingerprint}


def test_mmrec_typed_header_is_accepted(tmp_path, cards_dir):
    d = tmp_path / "t"
    d.mkdir()
    (d / "t.inter").write_text("userID:token\titemID:token\trating:float\tx_label:float\n"
                               "0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n1\t0\t1\t2\n")
    c = card(cards_dir, "t", "mmrec", d, '[files]\ninteractions = "t.inter"\n[split]\nmethod = "preset"\n'
                                         'column = "x_label"\n')
    ds = prepare(c)
    assert raw_pairs(ds, "test") == [("0", "1"), ("1", "0")]


# ----------------------------------------------------------------------------- MovieLens raw
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


# ----------------------------------------------------------------------------- HetRec Last.fm
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


# ----------------------------------------------------------------------------- MicroLens, RecBole split files
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


# ----------------------------------------------------------------------------- explicit negatives
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


# ----------------------------------------------------------------------------- published statistics
def test_card_stats_are_checked(tmp_path, cards_dir):
    d = tmp_path / "s"
    d.mkdir()
    (d / "s.inter").write_text("userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n1\t0\t1\t2\n")
    body = '[files]\ninteractions = "s.inter"\n[split]\nmethod = "preset"\ncolumn = "x_label"\n[stats]\n'
    assert prepare(card(cards_dir, "s", "mmrec", d, body + "users = 2\ntest_interactions = 2\n")).n_users == 2
    with pytest.raises(DataError, match=r"s.toml: prepared statistics differ .*test_interactions 2 != 3"):
        prepare(card(cards_dir, "s", "mmrec", d, body + "users = 2\ntest_interactions = 3\n"))


# ----------------------------------------------------------------------------- derived features
def test_genre_multihot_by_hand(ml100k):
    from mmbench.features.derived import multihot

    values, mask, meta = multihot(ml100k, "class")
    vocab = meta["vocabulary"]
    assert len(vocab) == 19 and vocab == sorted(vocab)
    header, rows = ml100k.item_attributes()
    toy = next(i for i, r in enumerate(rows) if r[2] == "Toy Story")  # Animation Children's Comedy
    assert {vocab[j] for j in np.flatnonzero(values[toy])} == {"Animation", "Children's", "Comedy"}
    assert mask.all() and values.sum(axis=1).min() >= 1


def test_kg_svd_puts_items_with_shared_entities_together(tmp_path):
    from mmbench.features.derived import kg_svd

    class DS:  # just what kg_svd reads
        def item_raw_ids(self):
            return ["1", "2", "3", "4", "5"]

    (tmp_path / "x.link").write_text("item_id:token\tentity_id:token\n1\tm.1\n2\tm.2\n3\tm.3\n4\tm.4\n")
    kg = ["head_id:token\trelation_id:token\ttail_id:token",
          "m.1\tfilm.actor\ta.x", "m.2\tfilm.actor\ta.x", "m.1\tfilm.genre\tg.y", "m.2\tfilm.genre\tg.y",
          "m.3\tfilm.actor\ta.z", "g.w\tgenre.film\tm.3", "m.4\tfilm.actor\ta.z", "m.4\tfilm.genre\tg.w",
          "m.1\tfilm.actor\ta.only1"]
    (tmp_path / "x.kg").write_text("\n".join(kg) + "\n")
    values, mask, meta = kg_svd(DS(), tmp_path / "x.kg", tmp_path / "x.link", dim=3, min_df=2)
    assert mask.tolist() == [True, True, True, True, False]  # item 5 has no link
    assert values.shape == (5, 3) and not values[4].any()
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(values[0], values[1]) > 0.99 and cos(values[2], values[3]) > 0.99
    assert abs(cos(values[0], values[2])) < 1e-6
    assert meta["entities"] == 4  # a.x g.y a.z g.w (a.only1 is shared by one item only)
    again, _, _ = kg_svd(DS(), tmp_path / "x.kg", tmp_path / "x.link", dim=3, min_df=2)
    assert np.array_equal(values, again)  # deterministic (sign-fixed components)


@pytest.mark.slow
def test_ml100k_derived_features_genre_and_kg(ml100k, tmp_path):
    """`features build-defaults` minus the text encoder: meta/genre + kg/entity-svd64 into store and manifest."""
    import importlib.util
    import shutil
    from pathlib import Path

    from mmbench.data.dataset import PreparedDataset
    from mmbench.features.pipeline import build_derived

    ml100k = PreparedDataset.load(shutil.copytree(ml100k.path, tmp_path / "copy"))  # keep the shared one clean
    feats = {f.key: f for f in build_derived(ml100k, find_card("ml-100k"))}
    assert set(feats) == {"meta/genre", "kg/entity-svd64"}
    assert feats["meta/genre"].dim == 19 and feats["kg/entity-svd64"].dim == 64
    bundled = Path(list(importlib.util.find_spec("recbole").submodule_search_locations)[0]) / "dataset_example"
    linked = {ln.split("\t")[0] for ln in (bundled / "ml-100k" / "ml-100k.link").read_text().splitlines()[1:]}
    unlinked = [i for i, r in enumerate(ml100k.item_raw_ids()) if r not in linked]
    kg = feats["kg/entity-svd64"]
    assert len(unlinked) > 0 and not kg.mask[unlinked].any() and not kg.values[unlinked].any()
    assert kg.mask.sum() > 0.9 * ml100k.n_items
    assert ml100k.manifest["features"] == {k: f.fingerprint for k, f in feats.items()}
