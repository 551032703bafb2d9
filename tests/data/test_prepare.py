"""Preparation: the embedded ml-100k, byte-identical splits, fingerprints, bad input."""
import json

import numpy as np
import pytest

from mmbench.data.cards import find_card, load_card
from mmbench.data.dataset import PreparedDataset
from mmbench.data.prepare import prepare
from mmbench.errors import ConfigError, DataError, RegistryError

from ..helpers import planted_rows, write_card, write_inter


def test_ml100k_embedded_statistics(ml100k):
    st = ml100k.stats
    assert st["raw"] == {"interactions": 100000, "users": 943, "items": 1682}
    assert (st["users"], st["items"], st["interactions"]) == (943, 1349, 99287)  # 5-core
    sp = st["splits"]
    assert sp["train"]["interactions"] + sp["valid"]["interactions"] + sp["test"]["interactions"] == 99287
    assert sp["test"]["users"] == 943
    man = json.loads((ml100k.path / "manifest.json").read_text())
    assert set(man["source"]["files"]) >= {"ml-100k.inter", "ml-100k.item"}
    assert len(man["fingerprint"]) == 64
    # every item id maps back to a raw id; item attributes carry the title for text features
    header, rows = ml100k.item_attributes()
    assert header[:3] == ["index", "item_id", "movie_title"] and rows[0][2] == "Toy Story"


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_same_card_and_seed_give_byte_identical_files(tmp_path, monkeypatch):
    card = find_card("ml-100k")
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "a"))
    a = prepare(card)
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "b"))
    b = prepare(card)
    fa, fb = _files(a.path), _files(b.path)
    fa.pop("manifest.json"), fb.pop("manifest.json")
    assert fa == fb
    assert a.fingerprint == b.fingerprint
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "c"))
    c = prepare(card, split={**card.split, "seed": 7})
    assert c.fingerprint != a.fingerprint


def test_tampered_split_is_detected(tmp_path, cards_dir):
    write_inter(tmp_path / "d" / "toy.inter", planted_rows())
    write_card(cards_dir, "toy", tmp_path / "d")
    ds = prepare(find_card("toy"))
    lab = np.load(ds.path / "label.npy")
    lab[0] = 2 if lab[0] != 2 else 0
    np.save(ds.path / "label.npy", lab)
    with pytest.raises(DataError, match="fingerprint"):
        PreparedDataset.load(ds.path)
    # prepare notices and rebuilds instead of using the corrupt copy
    again = prepare(find_card("toy"))
    assert again.fingerprint == ds.fingerprint


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_without_a_manifest_is_never_replaced(tmp_path, cards_dir, force):
    """prepare replaces a prepared folder (one with manifest.json, which only mmbench writes) and
    nothing else: a folder of someone else's files at the target is refused, --force or not, its
    files kept, no staging or `.old` folder left; a real prepared folder is replaced cleanly."""
    write_inter(tmp_path / "d" / "toy.inter", planted_rows())
    write_card(cards_dir, "toy", tmp_path / "d")
    out = prepare(find_card("toy")).path
    for p in out.iterdir():
        p.unlink()
    (out / "notes.md").write_text("mine")
    with pytest.raises(DataError, match=r"exists but is not a prepared dataset \(no manifest\.json\); refusing to "
                                        r"replace it; move it away and rerun") as e:
        prepare(find_card("toy"), force=force)
    assert str(e.value).startswith(str(out))
    assert [p.name for p in out.iterdir()] == ["notes.md"] and (out / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, out.name + ".lock"]
    (out / "notes.md").unlink()
    (out / "manifest.json").write_text("{}")  # a (broken) prepared folder: rebuilt in place
    again = prepare(find_card("toy"), force=force)
    assert again.path == out and (out / "label.npy").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, out.name + ".lock"]


def test_min_rating_keeps_only_positives(tmp_path, cards_dir):
    rows = [(f"u{u}", f"i{i}", 1 + (u + i) % 5, i) for u in range(10) for i in range(10)]
    write_inter(tmp_path / "d" / "r.inter", rows)
    write_card(cards_dir, "r", tmp_path / "d", filters="min_rating = 4.0")
    ds = prepare(find_card("r"))
    assert ds.arrays["rating"].min() >= 4
    assert ds.stats["interactions"] == sum(1 for r in rows if r[2] >= 4)


def test_temporal_loo_split_from_card(tmp_path, cards_dir):
    rows = [("u1", f"i{i}", 5, 100 - i) for i in range(6)] + [("u2", f"i{i}", 5, i) for i in range(6)]
    write_inter(tmp_path / "d" / "t.inter", rows)
    write_card(cards_dir, "t", tmp_path / "d", split='method = "temporal_loo"')
    ds = prepare(find_card("t"))
    raw_items = ds.item_raw_ids()
    u, i, _ = ds.pairs("test")
    got = sorted((ds.user_raw_ids()[a], raw_items[b]) for a, b in zip(u, i))
    assert got == [("u1", "i0"), ("u2", "i5")]  # the latest interaction of each user


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    ("user_id:token\titem_id:token\n", "no interactions"),
    ("user_id\titem_id\nu1\ti1\n", "name:type"),
    ("user_id:token\titem_id:token\trating:float\nu1\ti1\t5\nu2\ti2\n", r":3: expected 3 fields, found 2"),
    ("user_id:token\titem_id:token\trating:float\nu1\ti1\t5\nu2\ti2\tfive\n", r":3: field 'rating' is not a number"),
    ("user_id:token\titem_id:token\trating:float\nu1\ti1\t5\nu1\ti1\t4\n", r"duplicate \(user, item\) pair"),
    ("user_id:token\titem_id:token\trating:float\nu1\ti1\tnan\n", "not finite"),
])
def test_bad_interaction_files_name_file_and_line(tmp_path, cards_dir, content, match):
    d = tmp_path / "d"
    d.mkdir()
    (d / "bad.inter").write_text(content, encoding="utf-8")
    write_card(cards_dir, "bad", d, split='method = "random_ratio"\nratios = [0.8, 0.1, 0.1]')
    with pytest.raises(DataError, match=match) as e:
        prepare(find_card("bad"))
    assert "bad.inter" in str(e.value)
    assert not list((tmp_path / "home").rglob("manifest.json"))  # nothing half-written


def test_wrong_encoding_names_line(tmp_path, cards_dir):
    d = tmp_path / "d"
    d.mkdir()
    (d / "enc.inter").write_bytes(b"user_id:token\titem_id:token\nu1\ti1\nu\xe9\ti2\n")
    write_card(cards_dir, "enc", d)
    with pytest.raises(DataError, match=r"enc.inter:3: not UTF-8"):
        prepare(find_card("enc"))


def test_bundled_file_checksum_mismatch(tmp_path, cards_dir):
    write_inter(tmp_path / "d" / "c.inter", planted_rows())
    card = write_card(cards_dir, "c", tmp_path / "d")
    wrong = '[sources.checksums]\n"c.inter" = "' + "0" * 64 + '"\n\n[files]'
    card.write_text(card.read_text().replace("[files]", wrong))
    with pytest.raises(DataError, match="sha256 mismatch"):
        prepare(find_card("c"))


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.replace('title = "test data k"', 'title = "x"\ncolour = "red"'), "unknown key 'dataset.colour'"),
    (lambda s: s.replace('version = "1"', "version = 1"), "'dataset.version' must be str"),
    (lambda s: s.replace('license = "test"\n', ""), "missing required key 'dataset.license'"),
    (lambda s: s.replace('method = "random_ratio"', 'method = "random-ratio"'), "split.method"),
    (lambda s: s.replace("ratios = [0.8, 0.1, 0.1]", "ratios = [0.8, 0.3, 0.1]"), "summing to 1"),
    (lambda s: s.replace("[split]", "[split\n"), "invalid TOML"),
])
def test_malformed_cards(tmp_path, cards_dir, edit, match):
    p = write_card(cards_dir, "k", tmp_path)
    p.write_text(edit(p.read_text()))
    with pytest.raises(ConfigError, match=match) as e:
        load_card(p)
    assert "k.toml" in str(e.value)


def test_unknown_dataset_suggests(cards_dir):
    with pytest.raises(RegistryError, match="did you mean 'ml-100k'"):
        find_card("ml-100")
