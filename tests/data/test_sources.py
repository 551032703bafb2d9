"""URL sources of cards: several files per source, archives (strip, checksums), mirrors, manual origins;
every transfer against a local HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmbench.data import sources
from mmbench.data.cards import find_card, load_card
from mmbench.data.prepare import prepare
from mmbench.errors import ConfigError, DataError, DownloadError
from mmbench.paths import downloads_dir

from .local_server import serve

pytestmark = pytest.mark.network

INTER = ("userID\titemID\trating\tx_label\n" + "".join(f"{u}\t{i}\t1\t{2 if i == u % 3 else 0}\n"
                                                       for u in range(4) for i in range(3))).encode()
FEAT = io.BytesIO()
np.save(FEAT, np.eye(3, 2, dtype=np.float32))
FEAT = FEAT.getvalue()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setattr(sources, "BACKOFF", 0.0)
    monkeypatch.setattr(sources, "RETRIES", 1)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def multi_card(cards_dir, base, *, inter_sha=None, extra=""):
    p = cards_dir / "web.toml"
    p.write_text(f'''[dataset]
name = "web"
version = "2"
title = "t"
license = "test"
format = "mmrec"
modalities = ["interactions", "image"]

[[sources]]
name = "origin"

[[sources.downloads]]
url = "{base}/data/web.inter"
sha256 = "{inter_sha or sha(INTER)}"
size = {len(INTER)}

[[sources.downloads]]
url = "{base}/data/img.npy"
sha256 = "{sha(FEAT)}"
{extra}
[files]
interactions = "web.inter"

[features]
"image/x" = "img.npy"

[split]
method = "preset"
column = "x_label"
''')
    return find_card("web")


def test_multi_file_source_downloads_once_into_the_data_home(cards_dir):
    with serve({"/data/web.inter": INTER, "/data/img.npy": FEAT}) as srv:
        ds = prepare(multi_card(cards_dir, srv.base))
        assert sorted(srv.requests) == ["/data/img.npy", "/data/web.inter"]
        folder = downloads_dir() / "web" / "2" / "origin"
        assert (folder / "web.inter").read_bytes() == INTER
        assert ds.stats["interactions"] == 12 and ds.stats["splits"]["test"]["interactions"] == 4
        assert ds.features.get("image/x").values.shape == (3, 2)
        prepare(find_card("web"), force=True)  # verified files are reused: no new request
        assert len(srv.requests) == 2


def test_wrong_sha_of_a_download_fails_and_prepares_nothing(cards_dir, tmp_path):
    with serve({"/data/web.inter": INTER, "/data/img.npy": FEAT}) as srv:
        with pytest.raises(DownloadError, match="sha256 mismatch") as e:
            prepare(multi_card(cards_dir, srv.base, inter_sha="0" * 64))
    assert "web.inter" in str(e.value) and "\n" not in str(e.value)
    folder = downloads_dir() / "web" / "2" / "origin"
    assert not (folder / "web.inter").exists() and (folder / "web.inter.corrupt").exists()
    assert not list((tmp_path / "home").rglob("manifest.json"))


def test_mirror_url_replaces_every_origin(cards_dir):
    dead = "http://127.0.0.1:9"  # nothing listens there
    with serve({"/m/web.inter": INTER, "/m/img.npy": FEAT}) as mirror:
        ds = prepare(multi_card(cards_dir, dead), mirror=mirror.base + "/m")
        assert sorted(mirror.requests) == ["/m/img.npy", "/m/web.inter"]
    assert ds.stats["users"] == 4


def test_mirror_from_the_environment(cards_dir, tmp_path, monkeypatch):
    m = tmp_path / "mirror"
    m.mkdir()
    (m / "web.inter").write_bytes(INTER)
    (m / "img.npy").write_bytes(FEAT)
    monkeypatch.setenv("MMBENCH_MIRROR", str(m))
    assert prepare(multi_card(cards_dir, "https://unreachable.invalid")).stats["items"] == 3


# ----------------------------------------------------------------------------- archives
def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def archive_card(cards_dir, url, *, strip=None, checksums=None, sha256=None):
    lines = [f'url = "{url}"', "archive = true"]
    if strip:
        lines.append(f'strip = "{strip}"')
    if sha256:
        lines.append(f'sha256 = "{sha256}"')
    sums = "".join(f'"{k}" = "{v}"\n' for k, v in (checksums or {}).items())
    (cards_dir / "arc.toml").write_text(f'''[dataset]
name = "arc"
version = "1"
title = "t"
license = "test"
format = "mmrec"
modalities = ["interactions"]

[[sources]]
name = "zip"
{chr(10).join(lines)}

[sources.checksums]
{sums}
[files]
interactions = "web.inter"

[split]
method = "preset"
column = "x_label"
''')
    return find_card("arc")


def test_archive_with_one_top_folder_is_stripped_and_verified(cards_dir):
    z = zip_bytes({"pkg/web.inter": INTER, "pkg/README": b"hi"})
    with serve({"/a.zip": z}) as srv:
        ds = prepare(archive_card(cards_dir, srv.base + "/a.zip", checksums={"web.inter": sha(INTER)}, sha256=sha(z)))
        assert ds.stats["interactions"] == 12
        extracted = downloads_dir() / "arc" / "1" / "zip" / "extracted"
        assert (extracted / "pkg" / "web.inter").is_file() and (extracted.parent / "a.zip").is_file()
        prepare(find_card("arc"), force=True)
        assert srv.requests == ["/a.zip"]


def test_explicit_strip_that_is_missing_names_the_top_level(cards_dir):
    z = zip_bytes({"pkg/web.inter": INTER})
    with serve({"/a.zip": z}) as srv:
        with pytest.raises(DataError, match=r"a.zip: folder 'ml-100k' \(the card's strip\) is not in the archive "
                                            r"\(top level: pkg\)"):
            prepare(archive_card(cards_dir, srv.base + "/a.zip", strip="ml-100k"))


def test_extracted_checksum_mismatch_keeps_the_archive_removes_the_tree(cards_dir, tmp_path):
    z = zip_bytes({"web.inter": INTER + b"0\t0\t1\t0\n"})
    with serve({"/a.zip": z}) as srv:
        with pytest.raises(DataError, match=r"web.inter: sha256 mismatch") as e:
            prepare(archive_card(cards_dir, srv.base + "/a.zip", checksums={"web.inter": sha(INTER)}))
    assert "\n" not in str(e.value)
    src = downloads_dir() / "arc" / "1" / "zip"
    assert (src / "a.zip").read_bytes() == z  # the verified download stays
    assert not (src / "extracted").exists() and not (src / "extracted.json").exists()
    assert not list((tmp_path / "home").rglob("manifest.json"))


def test_zip_slip_archive_is_refused(cards_dir, tmp_path):
    z = zip_bytes({"../../evil.txt": b"x", "web.inter": INTER})
    with serve({"/a.zip": z}) as srv:
        with pytest.raises(DataError, match=r"a.zip: member '../../evil.txt' contains '..'"):
            prepare(archive_card(cards_dir, srv.base + "/a.zip"))
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (downloads_dir() / "arc" / "1" / "zip" / "extracted").exists()


# ----------------------------------------------------------------------------- manual origins, card schema
def test_manual_source_needs_a_mirror(tmp_path, monkeypatch):
    card = find_card("amazon-baby")
    with pytest.raises(DownloadError, match="cannot be downloaded automatically") as e:
        prepare(card)
    assert "baby.inter, image_feat.npy, text_feat.npy" in str(e.value) and "--mirror" in str(e.value)
    # exercised through the mirror: a tiny stand-in with the published file names (stats check disabled)
    m = tmp_path / "m"
    m.mkdir()
    (m / "baby.inter").write_text("userID\titemID\trating\ttimestamp\tx_label\n0\t0\t5\t10\t0\n0\t1\t4\t11\t2\n"
                                  "1\t1\t5\t12\t0\n1\t0\t3\t13\t2\n")
    np.save(m / "image_feat.npy", np.ones((2, 4096), np.float32))
    np.save(m / "text_feat.npy", np.ones((2, 384), np.float32))
    text = Path(card.path).read_text().split("[stats]")[0]
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "amazon-baby.toml").write_text(text)
    monkeypatch.setenv("MMBENCH_CARDS", str(tmp_path / "cards"))
    ds = prepare(find_card("amazon-baby"), mirror=str(m))
    assert ds.features.keys() == ["image/mmrec-cnn4096", "text/mmrec-sbert384"]
    assert ds.stats["splits"]["test"]["interactions"] == 2


def test_card_rejects_url_and_downloads_together(cards_dir):
    p = cards_dir / "bad.toml"
    p.write_text('[dataset]\nname = "bad"\nversion = "1"\ntitle = "t"\nlicense = "x"\nformat = "mmrec"\n'
                 'modalities = ["interactions"]\n[[sources]]\nname = "s"\nurl = "http://h/a.inter"\n'
                 '[[sources.downloads]]\nurl = "http://h/b.inter"\n[files]\ninteractions = "a.inter"\n'
                 '[split]\nmethod = "preset"\ncolumn = "x_label"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: sources\[0\] has both url and downloads"):
        load_card(p)


def test_every_builtin_card_loads_and_names_its_licence():
    from mmbench.data.cards import list_cards

    names = {c.name: c for c in list_cards()}
    for want in ("ml-100k", "ml-1m", "lastfm-2k", "lfm2k", "amazon-baby", "amazon-sports", "amazon-clothing",
                 "microlens-100k"):
        c = names[want]
        assert c.meta["license"] and c.meta.get("citation") and c.sources
    lfm = names["lfm2k"]
    assert all(d.get("sha256") and d.get("size") for d in lfm.sources[0]["downloads"])
    assert lfm.data["features"] == {"text/all-MiniLM-L6-v2": "all-MiniLM-L6-v2.npy", "audio/vggish": "vggish.npy",
                                    "audio/whisper": "whisper.npy"}
    ml = names["ml-100k"]
    assert [s["name"] for s in ml.sources] == ["recbole-bundled", "grouplens"]
    assert ml.for_source(ml.sources[1]).files["interactions"] == "u.data"


# ----------------------------------------------------------------------------- ml-100k: both sources agree
def test_ml100k_grouplens_zip_via_mirror_gives_the_bundled_split(ml100k, tmp_path):
    """u.data / u.item rebuilt from RecBole's bundled files, zipped like GroupLens, served by a mirror."""
    import importlib.util

    bundled = Path(list(importlib.util.find_spec("recbole").submodule_search_locations)[0]) / \
        "dataset_example" / "ml-100k"
    inter = (bundled / "ml-100k.inter").read_text().splitlines()[1:]
    udata = "".join(line + "\n" for line in inter).encode()
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
              "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
              "War", "Western"]
    uitem = []
    for line in (bundled / "ml-100k.item").read_text().splitlines()[1:]:
        iid, title, year, cls = line.split("\t")
        flags = ["1" if g in cls.split() else "0" for g in genres]
        uitem.append(f"{iid}|{title} ({year})|01-Jan-{year}||http://imdb|" + "|".join(flags))
    z = zip_bytes({"ml-100k/u.data": udata, "ml-100k/u.item": ("\n".join(uitem) + "\n").encode("latin-1")})
    with serve({"/ml-100k.zip": z}) as srv:
        ds = prepare(find_card("ml-100k"), source="grouplens", mirror=srv.base)
    assert ds.fingerprint == ml100k.fingerprint  # same interactions, same protocol -> same split bytes
    header, rows = ds.item_attributes()
    assert header[:4] == ["index", "item_id", "movie_title", "release_year"]
    assert rows[0][2:4] == ["Toy Story", "1995"]


# ----------------------------------------------------------------------------- raw media per item
class ByteLength:
    """A stand-in image encoder: (file size, first byte) -- enough to see which file each row came from."""

    modality, name, dim = "image", "bytes", 2
    key = "image/bytes"

    def config(self):
        return {"encoder": self.key}

    def encode(self, inputs, *, device="cpu"):
        out = []
        for p in inputs:
            b = Path(p).read_bytes()
            out.append([len(b), b[0]])
        return np.asarray(out, dtype=np.float32)


def media_card(cards_dir, data, template):
    (data / "md.inter").write_text("user_id:token\titem_id:token\n" + "".join(
        f"u{u}\t{i}\n" for u in range(3) for i in ("a", "b", "c")))
    (cards_dir / "md.toml").write_text(f'''[dataset]
name = "md"
version = "1"
title = "t"
license = "test"
format = "recbole"
modalities = ["interactions", "image"]

[[sources]]
name = "local"
path = "{data.as_posix()}"

[files]
interactions = "md.inter"
items = "md.item"

[media]
image = "{template}"

[split]
method = "random_loo"
''')
    return find_card("md")


def test_media_urls_are_downloaded_into_the_data_home(tmp_path, cards_dir):
    from mmbench.features.pipeline import extract

    data = tmp_path / "d"
    data.mkdir()
    with serve({"/img/a.jpg": b"\x01aaa", "/img/c.jpg": b"\x07c"}) as srv:
        (data / "md.item").write_text("item_id:token\tpic:token\n"
                                      f"a\t{srv.base}/img/a.jpg\nb\t\nc\t{srv.base}/img/c.jpg\n")
        card = media_card(cards_dir, data, "{pic}")
        ds = prepare(card)
        feat, rep = extract(ds, card, "image", ByteLength(), progress=False)
        assert sorted(srv.requests) == ["/img/a.jpg", "/img/c.jpg"]
    assert feat.values.tolist() == [[4, 1], [0, 0], [2, 7]] and feat.mask.tolist() == [True, False, True]
    assert (tmp_path / "home" / "media" / "md" / "1" / "image" / "a.jpg").read_bytes() == b"\x01aaa"
    assert rep.n_encoded == 2 and rep.n_missing == 1
    assert ds.manifest["features"]["image/bytes"] == feat.fingerprint


def test_media_paths_relative_to_the_source_and_missing_files(tmp_path, cards_dir):
    from mmbench.features.pipeline import extract

    data = tmp_path / "d"
    (data / "covers").mkdir(parents=True)
    (data / "covers" / "a.png").write_bytes(b"\x05xyz")
    (data / "covers" / "b.png").write_bytes(b"\x09")
    (data / "md.item").write_text("item_id:token\tcolour:token\na\tred\nb\tblue\nc\tgreen\n")
    card = media_card(cards_dir, data, "covers/{item_id}.png")
    ds = prepare(card)
    feat, _ = extract(ds, card, "image", ByteLength(), progress=False)
    assert feat.values.tolist() == [[4, 5], [1, 9], [0, 0]] and feat.mask.tolist() == [True, True, False]
    with pytest.raises(DataError, match="feature 'image/bytes' already exists"):
        extract(ds, card, "image", ByteLength(), progress=False)
    with pytest.raises(ConfigError, match=r"md.toml \[media\]: template field \{nope\} is not an item attribute"):
        extract(ds, media_card(cards_dir, data, "covers/{nope}.png"), "image", ByteLength(), key="image/x",
                progress=False)


def test_encoder_names_resolve_and_check_the_modality():
    from mmbench.features.pipeline import resolve_encoder

    assert resolve_encoder("minilm", "text").key == "text/all-MiniLM-L6-v2"
    assert resolve_encoder("text/all-MiniLM-L6-v2").key == "text/all-MiniLM-L6-v2"
    assert resolve_encoder("efficientnet-lite0", "image").key == "image/efficientnet-lite0"
    with pytest.raises(ConfigError, match="encodes text, not image"):
        resolve_encoder("minilm", "image")
    from mmbench.errors import RegistryError

    with pytest.raises(RegistryError, match="unknown encoder 'minlm'; did you mean 'minilm'"):
        resolve_encoder("minlm")


def test_a_mirror_may_hold_an_archives_members_unpacked(cards_dir, tmp_path):
    mirror = tmp_path / "unpacked"
    mirror.mkdir()
    (mirror / "web.inter").write_bytes(INTER)
    c = archive_card(cards_dir, "https://origin.invalid/a.zip", checksums={"web.inter": sha(INTER)})
    ds = prepare(c, mirror=str(mirror))  # no a.zip there: the member the checksums name is fetched instead
    assert ds.stats["interactions"] == 12
    assert (downloads_dir() / "arc" / "1" / "zip" / "unpacked" / "web.inter").read_bytes() == INTER
    shutil.rmtree(downloads_dir() / "arc")
    (mirror / "web.inter").write_bytes(INTER.replace(b"\t1\t", b"\t2\t", 1))  # not the pinned member
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        sources.fetch_source(c, c.sources[0], mirror=f"{tmp_path / 'elsewhere'}{os.pathsep}{mirror}", progress=False)
