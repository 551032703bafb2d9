"""A text variant ([text.variants]) read from a side source: HetRec's artists.dat (tab-separated,
quotes inside names, empty picture URLs, Latin-1 bytes) joined to the items on their original
artist id; the feature it makes carries the card's provenance. The real file on lfm2k too."""
from __future__ import annotations

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import DataError
from mmbench.features.pipeline import extract, inputs_for, text_variants

from ..conftest import SHARED_DATA, needs_shared
from ..data.formats.common import card
from .test_extract import CountingText

# id, name, url, pictureURL as HetRec writes them; Latin-1 bytes (the release mixes encodings)
ARTISTS = ('id\tname\turl\tpictureURL\n'
           '7\t"Weird Al" Yankovic\thttp://www.last.fm/music/%22Weird+Al%22+Yankovic\thttp://u/7.jpg\n'
           '12\tBallaké Sissoko\thttp://www.last.fm/music/Ballak%C3%A9+Sissoko\t\n'
           '3\tRoyce da 5\'9"\thttp://www.last.fm/music/Royce+da+5%279%22\thttp://u/3.png\n'
           '\n'
           '99\tNobody Listens\thttp://www.last.fm/music/Nobody+Listens\thttp://u/99.jpg\n')


def _dataset(tmp_path, cards_dir, artists: str, encoding: str = "latin-1"):
    """Four items; item i has the original artist id ARTIST_OF[i] (item 3's is not in artists.dat)."""
    data, side = tmp_path / "data", tmp_path / "hetrec"
    data.mkdir(parents=True)
    side.mkdir()
    rows = [(u, i, 2 if k == 2 else 1 if k == 1 else 0) for u in range(4) for k, i in enumerate([(u + j) % 4
                                                                                               for j in range(3)])]
    (data / "d.inter").write_text("userID\titemID\trating\tx_label\n" + "".join(f"{u}\t{i}\t1\t{x}\n"
                                                                               for u, i, x in rows))
    (data / "items.tsv").write_text("itemID\tartistID\n0\t12\n1\t7\n2\t3\n3\t5\n")
    (side / "artists.dat").write_bytes(artists.encode(encoding))
    card(cards_dir, "d", "mmrec", data, f'''
[[side_sources]]
name = "hetrec"
path = "{side.as_posix()}"

[files]
interactions = "d.inter"
items = "items.tsv"
[columns]
user = "userID"
item = "itemID"
label = "x_label"
[text]
fields = ["artistID"]
[text.variants."text/name"]
side_source = "hetrec"
file = "artists.dat"
key = "id"
join = "artistID"
fields = ["name"]
[split]
method = "preset"
column = "x_label"
[provenance]
"text/name" = {{ source = "the artist's name", behaviour = false, interactions = "none" }}
"text" = {{ source = "ids", behaviour = true, interactions = "all" }}
''')
    c = find_card("d")
    return c, prepare(c)


def test_artists_dat_quirks_are_read_and_joined_on_the_artist_id(tmp_path, cards_dir):
    c, ds = _dataset(tmp_path, cards_dir, ARTISTS)
    assert text_variants(c) == ["text/name"]
    texts, failed = inputs_for(ds, c, "text", key="text/name")
    # by hand: item 0 -> artist 12, 1 -> 7, 2 -> 3, 3 -> 5 (absent: no text, a missing row)
    assert texts == ["Ballaké Sissoko", '"Weird Al" Yankovic', 'Royce da 5\'9"', None] and failed == {}
    assert inputs_for(ds, c, "text")[0] == ["12", "7", "3", "5"]  # the card's own [text] is unchanged


def test_the_variant_feature_carries_its_provenance(tmp_path, cards_dir):
    c, ds = _dataset(tmp_path, cards_dir, ARTISTS, encoding="utf-8")
    feat, rep = extract(ds, c, "text", CountingText(), key="text/name", progress=False)
    assert (rep.n_items, rep.n_missing) == (4, 1) and feat.mask.tolist() == [True, True, True, False]
    assert feat.meta["provenance"] == {"source": "the artist's name", "behaviour": False, "interactions": "none",
                                       "leaks": False}
    other, _ = extract(ds, c, "text", CountingText(), key="text/ids", progress=False)
    assert other.meta["provenance"]["leaks"] is True  # inherits the declaration of its input, "text"
    assert ds.manifest["feature_provenance"]["text/ids"]["interactions"] == "all"
    assert np.array_equal(feat.values[0], CountingText().encode(["Ballaké Sissoko"])[0])


def test_a_broken_artists_file_names_its_line(tmp_path, cards_dir):
    c, ds = _dataset(tmp_path, cards_dir, ARTISTS + "7\tAgain\thttp://x\thttp://y\n")
    with pytest.raises(DataError, match=r"artists\.dat:7: .*duplicate id '7' in column 'id'"):
        inputs_for(ds, c, "text", key="text/name")
    c, ds = _dataset(tmp_path / "b", cards_dir, ARTISTS.replace("\thttp://u/3.png", ""))
    with pytest.raises(DataError, match=r"artists\.dat:4"):
        inputs_for(ds, c, "text", key="text/name")


LFM2K, HETREC = SHARED_DATA / "lfm2k", SHARED_DATA / "hetrec2011-lastfm-2k-raw"


@needs_shared("lfm2k", "lfm2k.inter")
@needs_shared("hetrec2011-lastfm-2k-raw", "artists.dat")
def test_lfm2k_artist_names_come_from_artists_dat_through_the_original_ids(monkeypatch):
    import os

    monkeypatch.setenv("MMBENCH_MIRROR", f"{LFM2K}{os.pathsep}{HETREC}")
    c = find_card("lfm2k")
    ds = prepare(c)
    texts, _ = inputs_for(ds, c, "text", key="text/artist-name-minilm")
    # independently: item i is the HetRec artist of its rows in lfm2k_og_ids.inter (row-aligned copy)
    ours = [ln.split("\t") for ln in (LFM2K / "lfm2k.inter").read_text().splitlines()[1:]]
    theirs = [ln.split("\t") for ln in (LFM2K / "lfm2k_og_ids.inter").read_text().splitlines()[1:]]
    artist = {int(a[1]): b[1] for a, b in zip(ours, theirs)}
    names = dict(ln.split("\t")[:2] for ln in (HETREC / "artists.dat").read_text(encoding="utf-8").splitlines()[1:]
                 if ln)
    assert len(texts) == 1425 and None not in texts  # coverage: every item has a row
    assert texts == [names[artist[i]] for i in range(1425)]
    assert texts[100] == "Bob Marley" and artist[100] == "250"
    assert c.data["provenance"]["text/all-MiniLM-L6-v2"]["interactions"] == "all"
