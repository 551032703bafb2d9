"""`mmbench import` / `mmbench export`: a researcher's own data in, prepared data out, lossless round trips."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.exchange import export_dataset, import_dataset
from mmbench.data.prepare import prepare, record_features
from mmbench.errors import DataError
from mmbench.io import OWNED
from mmbench.paths import local_cards_dir

from ..conftest import run_cli
from ..helpers import planted_rows, write_card, write_inter


@pytest.fixture
def toy(tmp_path, cards_dir):
    """A RecBole dataset with ratings, timestamps, item/user attributes and two features (one with gaps)."""
    d = tmp_path / "src"
    rows = planted_rows(n_users=30, n_items=20, per_user=6, seed=3)
    write_inter(d / "toy.inter", rows)
    items = sorted({r[1] for r in rows}, key=lambda s: int(s[1:]))
    (d / "toy.item").write_text("item_id:token\tname:token_seq\tgenre:token\n" +
                                "".join(f"{i}\tthe item {i[1:]}\tg{int(i[1:]) % 3}\n" for i in items))
    (d / "toy.user").write_text("user_id:token\tage:token\n" + "".join(f"u{u}\t{20 + u}\n" for u in range(30)))
    card = write_card(cards_dir, "toy", d, filters="user_core = 2\nitem_core = 2")
    card.write_text(card.read_text().replace('interactions = "toy.inter"',
                                             'interactions = "toy.inter"\nitems = "toy.item"\nusers = "toy.user"'))
    ds = prepare(find_card("toy"))
    rng = np.random.default_rng(0)
    mask = np.ones(ds.n_items, bool)
    mask[[1, 4]] = False
    ds.features.put("text/fake", rng.normal(size=(ds.n_items, 5)), mask, meta={"source": "test"})
    ds.features.put("image/tiny", rng.random((ds.n_items, 3)).astype(np.float32) / 3, meta={"source": "test"})
    record_features(ds)
    return ds


def _same_dataset(a, b):
    assert b.fingerprint == a.fingerprint
    for name in ("item_attributes.tsv", "user_attributes.tsv", "users.tsv", "items.tsv"):
        assert (b.path / name).read_bytes() == (a.path / name).read_bytes(), name
    fa, fb = a.features, b.features
    assert fb.keys() == fa.keys()
    for k in fa.keys():
        assert fb.get(k).fingerprint == fa.get(k).fingerprint
        assert np.array_equal(fb.get(k).mask, fa.get(k).mask)
    assert b.manifest["features"] == a.manifest["features"]


def test_mmrec_export_files_by_hand(toy, tmp_path):
    out = export_dataset(toy, "mmrec", tmp_path / "out")
    lines = (out / "toy.inter").read_text().splitlines()
    assert lines[0] == "userID\titemID\trating\ttimestamp\tx_label"
    body = [ln.split("\t") for ln in lines[1:]]
    assert len(body) == toy.stats["interactions"]
    a = toy.arrays
    assert [int(r[0]) for r in body] == a["user"].tolist() and [int(r[4]) for r in body] == a["label"].tolist()
    assert sum(r[4] == "2" for r in body) == toy.stats["splits"]["test"]["interactions"]
    umap = (out / "u_id_mapping.csv").read_text().splitlines()
    assert umap[0] == "user_id\tuserID" and umap[1] == f"{toy.user_raw_ids()[0]}\t0"
    values = np.load(out / "text__fake.npy")
    assert values.shape == (toy.n_items, 5) and not values[1].any()
    assert np.load(out / "text__fake.mask.npy").tolist() == toy.features.get("text/fake").mask.tolist()
    info = json.loads((out / "mmbench.json").read_text())
    assert info["fingerprint"] == toy.fingerprint and set(info["features"]) == {"text/fake", "image/tiny"}
    assert not (tmp_path / "out.incomplete").exists()


@pytest.mark.parametrize("fmt", ["mmrec", "recbole"])
def test_round_trip_is_lossless(toy, tmp_path, fmt):
    out = export_dataset(toy, fmt, tmp_path / fmt)
    back = import_dataset(fmt, out, f"toy-{fmt}")
    _same_dataset(toy, back)
    assert back.manifest["split"]["method"] == "preset"
    # and once more: exporting the imported copy writes the same files
    again = export_dataset(back, fmt, tmp_path / f"{fmt}2", name="toy")
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name not in ("mmbench.json", OWNED):  # both name the dataset
            assert (again / p.relative_to(out)).read_bytes() == p.read_bytes(), p.name


def test_recbole_export_is_recbole_benchmark_layout(toy, tmp_path):
    out = export_dataset(toy, "recbole", tmp_path / "rb")
    assert sorted(p.name for p in out.iterdir()) == [OWNED, "features", "mmbench.json", "toy.item", "toy.test.inter",
                                                    "toy.train.inter", "toy.user", "toy.valid.inter"]
    head = (out / "toy.train.inter").read_text().splitlines()[0]
    assert head == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    n = sum(len((out / f"toy.{s}.inter").read_text().splitlines()) - 1 for s in ("train", "valid", "test"))
    assert n == toy.stats["interactions"]
    assert (out / "toy.item").read_text().splitlines()[0] == "item_id:token\tname:token\tgenre:token"


def test_import_own_mmrec_data_guesses_feature_keys(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "mine.inter").write_text("userID\titemID\trating\tx_label\n" + "".join(
        f"{u}\t{i}\t{(u + i) % 3}\t{2 if i == u % 4 else 0}\n" for u in range(5) for i in range(4)))
    np.save(d / "image_feat.npy", np.arange(8, dtype=np.float32).reshape(4, 2))
    np.save(d / "text_feat.npy", np.ones((4, 3), np.float32))
    np.save(d / "popularity.npy", np.ones((4, 1)))
    with pytest.raises(DataError, match="rating <= 0"):  # ratings 0 present, no threshold given
        import_dataset("mmrec", d, "mine")
    assert not (local_cards_dir() / "mine.toml").exists()
    ds = import_dataset("mmrec", d, "mine", positive_threshold=1)
    assert ds.features.keys() == ["image/image_feat", "meta/popularity", "text/text_feat"]
    assert ds.arrays["rating"].min() >= 1
    assert ds.stats["interactions"] == sum((u + i) % 3 >= 1 for u in range(5) for i in range(4))
    card = find_card("mine")
    assert card.filters["min_rating"] == 1.0 and set(card.sources[0]["checksums"]) == {
        "mine.inter", "image_feat.npy", "text_feat.npy", "popularity.npy"}
    # the card pins the files: changing one afterwards is detected
    (d / "mine.inter").write_text((d / "mine.inter").read_text() + "4\t3\t2\t0\n")
    with pytest.raises(DataError, match=r"mine.inter: sha256 mismatch"):
        prepare(card, force=True)


def test_import_refuses_to_shadow_a_builtin(tmp_path, toy):
    out = export_dataset(toy, "mmrec", tmp_path / "x")
    with pytest.raises(DataError, match="a dataset named 'ml-100k' already exists"):
        import_dataset("mmrec", out, "ml-100k")
    import_dataset("mmrec", out, "again")
    with pytest.raises(DataError, match="already imported"):
        import_dataset("mmrec", out, "again")
    assert import_dataset("mmrec", out, "again", force=True).fingerprint == toy.fingerprint


@pytest.mark.slow
def test_cli_import_export_and_features_list(toy, tmp_path):
    out = tmp_path / "cli-out"
    p = run_cli("export", "toy", "--to", "mmrec", "--out", out)
    assert f"as mmrec to {out}" in p.stdout
    p = run_cli("import", out, "--format", "mmrec", "--name", "toy-cli")
    assert "imported toy-cli" in p.stdout and "text/fake (5-d)" in p.stdout
    p = run_cli("features", "list", "-d", "toy-cli")
    assert "text/fake" in p.stdout and "missing      2/" in p.stdout
    p = run_cli("export", "toy", "--to", "mmrec", "--out", out, check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "already exists" in p.stderr


def test_imported_feature_files_are_pinned_too(tmp_path, toy):
    out = export_dataset(toy, "mmrec", tmp_path / "x")
    import_dataset("mmrec", out, "pinned")
    values = np.load(out / "image__tiny.npy")
    values[0, 0] += 1
    np.save(out / "image__tiny.npy", values)
    with pytest.raises(DataError, match=r"image__tiny\.npy: sha256 mismatch"):
        prepare(find_card("pinned"), force=True)


def test_export_force_deletes_only_what_mmbench_wrote(toy, tmp_path, monkeypatch):
    """`--out .. --force` once deleted the parent folder; now a folder is replaced only when its
    marker lists every file in it, unchanged."""
    victim = tmp_path / "victim"
    (victim / "inner").mkdir(parents=True)
    (victim / "precious.txt").write_text("x")
    monkeypatch.chdir(victim / "inner")
    for out in ("..", ".", str(victim), "/"):
        with pytest.raises(DataError, match=rf"output folder has no {OWNED} \(it was not written by mmbench\); "
                                            "refusing to delete it"):
            export_dataset(toy, "mmrec", out, force=True)
    assert sorted(p.name for p in victim.iterdir()) == ["inner", "precious.txt"]  # nothing staged either
    assert not list((victim / "inner").iterdir())
    export_dataset(toy, "mmrec", tmp_path / "e")
    export_dataset(toy, "recbole", tmp_path / "e", force=True)  # an export of its own: replaced
    assert (tmp_path / "e" / "toy.train.inter").exists() and not (tmp_path / "e" / "toy.inter").exists()
    (tmp_path / "e" / "notes.md").write_text("mine")
    with pytest.raises(DataError, match=r"holds 'notes\.md', which mmbench did not write; refusing to delete it"):
        export_dataset(toy, "mmrec", tmp_path / "e", force=True)
    assert (tmp_path / "e" / "notes.md").read_text() == "mine" and (tmp_path / "e" / "toy.train.inter").exists()
    p = run_cli("export", "toy", "--to", "mmrec", "--out", "..", "--force", cwd=victim / "inner", check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "refusing to delete it" in p.stderr
    assert (victim / "precious.txt").exists()
