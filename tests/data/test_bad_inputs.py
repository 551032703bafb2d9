"""The quality bar: every bad input gives ONE clear line naming file / line / field, and leaves nothing
half-written (no prepared dataset, no staging folder, no finished download, no imported card)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from mmbench.data import sources
from mmbench.data.cards import find_card
from mmbench.data.exchange import import_dataset
from mmbench.data.prepare import prepare
from mmbench.errors import DataError, DownloadError, MMBenchError
from mmbench.paths import local_cards_dir

from ..conftest import run_cli
from .local_server import serve

MMREC_OK = "userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n1\t0\t1\t2\n"


def npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=isinstance(a, np.ndarray) and a.dtype == object)
    return buf.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


PRESET = '[split]\nmethod = "preset"\ncolumn = "x_label"\n'
FEATURE = '[features]\n"image/f" = "f.npy"\n'

# name: (format, files in the data folder, extra card TOML, expected message (regex))
LOCAL_CASES = {
    "malformed row": ("mmrec", {"m.inter": "userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\n"}, PRESET,
                      r"m\.inter:3: expected 4 fields, found 3"),
    "malformed '::' row": ("movielens-raw", {"m.inter": "1::10::5::100\n1::20::3\n"},
                           '[split]\nmethod = "random_loo"\n', r"m\.inter:2: expected 4 fields, found 3"),
    "rating not a number": ("mmrec", {"m.inter": MMREC_OK.replace("1\t1\t1\t0", "1\t1\tgood\t0")}, PRESET,
                            r"m\.inter:4: field 'rating' is not a number: 'good'"),
    "id gap": ("mmrec", {"m.inter": MMREC_OK.replace("0\t1\t1\t2", "0\t3\t1\t2")}, PRESET,
               r"m\.inter: field 'itemID': ids are not contiguous 0\.\.3: id 2 never occurs"),
    "id not an integer": ("mmrec", {"m.inter": MMREC_OK.replace("1\t0\t1\t2", "1\ta7\t1\t2")}, PRESET,
                          r"m\.inter:5: field 'itemID': id 'a7' is not a non-negative integer"),
    "split label out of range": ("mmrec", {"m.inter": MMREC_OK.replace("0\t1\t1\t2", "0\t1\t1\t3")}, PRESET,
                                 r"m\.inter:3: field 'x_label': split label must be 0, 1 or 2, got '3'"),
    "NaN in a feature file": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.array([[1.0], [np.nan]]))},
                              FEATURE + PRESET, r"f\.npy: non-finite value nan at row 1, column 0"),
    "inf in a feature file": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.array([[np.inf, 0], [0, 0]]))},
                              FEATURE + PRESET, r"f\.npy: non-finite value inf at row 0, column 0"),
    "feature rows != item count": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.ones((3, 2)))},
                                   FEATURE + PRESET,
                                   r"f\.npy: feature file has 3 rows but the interaction file has 2 items"),
    "feature file not 2-D": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.ones(2))}, FEATURE + PRESET,
                             r"f\.npy: feature matrix has shape \(2,\), expected \(n_items, dim\)"),
    "pickled feature file": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.array([{"x": 1}, None], dtype=object))},
                             FEATURE + PRESET, r"f\.npy: cannot read as a plain numeric \.npy"),
    "mask of the wrong type": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.ones((2, 2))),
                                         "f.mask.npy": npy(np.ones(2))}, FEATURE + PRESET,
                               r"f\.mask\.npy: mask has dtype float64 and shape \(2,\), expected bool \(2,\)"),
    "empty split": ("mmrec", {"m.inter": MMREC_OK.replace("\t2\n", "\t1\n")}, PRESET,
                    r"m\.toml: the test split is empty"),
    "explicit negatives without a threshold": ("mmrec", {"m.inter": MMREC_OK.replace("1\t1\t1\t0", "1\t1\t0\t0")},
                                               PRESET, r"m\.inter:4: 1 interactions have rating <= 0"),
    "duplicate pair": ("mmrec", {"m.inter": MMREC_OK + "1\t0\t1\t0\n"}, PRESET,
                       r"m\.inter:6: duplicate \(user, item\) pair '1', '0' at lines 5 and 6"),
    "unknown tag id": ("hetrec-lastfm", {"m.inter": "userID\tartistID\tweight\n1\t5\t10\n1\t6\t3\n2\t5\t4\n2\t6\t1\n",
                                         "a.dat": "id\tname\turl\tpictureURL\n5\tA\tu\tp\n6\tB\tu\tp\n",
                                         "t.dat": "tagID\ttagValue\n1\trock\n",
                                         "ut.dat": "userID\tartistID\ttagID\tday\tmonth\tyear\n1\t5\t9\t1\t1\t2009\n"},
                       '[files]\nitems = "a.dat"\ntags = "t.dat"\ntagged = "ut.dat"\n[split]\nmethod = "random_loo"\n',
                       r"ut\.dat:2: field 'tagID': tag '9' is not in t\.dat"),
    "not UTF-8": ("mmrec", {"m.inter": b"userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t\xff1\t1\t2\n"}, PRESET,
                  r"m\.inter:3: not UTF-8 text"),
    "published statistics differ": ("mmrec", {"m.inter": MMREC_OK}, PRESET + "[stats]\ninteractions = 5\n",
                                    r"m\.toml: prepared statistics differ from the card's published ones: "
                                    r"interactions 4 != 5"),
}


def write_case(tmp_path, cards_dir, fmt, files, extra):
    d = tmp_path / "data"
    d.mkdir()
    for name, content in files.items():
        (d / name).write_bytes(content.encode() if isinstance(content, str) else content)
    extra_files = ""
    if extra.startswith("[files]"):
        extra_files, extra = extra.split("\n", 1)[1].split("[split]", 1)
        extra = "[split]" + extra
    (cards_dir / "m.toml").write_text(f'''[dataset]
name = "m"
version = "1"
title = "t"
license = "test"
format = "{fmt}"
modalities = ["interactions"]

[[sources]]
name = "local"
path = "{d.as_posix()}"

[files]
interactions = "m.inter"
{extra_files}
{extra}''')
    return d


def assert_nothing_half_written(tmp_path):
    home = tmp_path / "home"
    assert not list(home.rglob("manifest.json")), "a prepared dataset was left behind"
    assert not list(tmp_path.rglob("*.incomplete")), "a staging folder was left behind"
    assert not list(home.rglob("features")), "a feature store was left behind"


@pytest.mark.parametrize("case", sorted(LOCAL_CASES))
def test_bad_local_input(case, tmp_path, cards_dir):
    fmt, files, extra, message = LOCAL_CASES[case]
    write_case(tmp_path, cards_dir, fmt, files, extra)
    with pytest.raises(MMBenchError, match=message) as e:
        prepare(find_card("m"))
    assert "\n" not in str(e.value)
    assert_nothing_half_written(tmp_path)


# ----------------------------------------------------------------------------- downloads and archives
@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(sources, "BACKOFF", 0.0)
    monkeypatch.setattr(sources, "RETRIES", 1)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)


def url_card(cards_dir, url, extra=""):
    (cards_dir / "w.toml").write_text(f'''[dataset]
name = "w"
version = "1"
title = "t"
license = "test"
format = "mmrec"
modalities = ["interactions"]

[[sources]]
name = "web"
url = "{url}"
{extra}
[files]
interactions = "w.inter"

{PRESET}''')
    return find_card("w")


@pytest.mark.network
def test_truncated_download(tmp_path, cards_dir, fast):
    body = MMREC_OK.encode()
    with serve({"/w.inter": body}) as srv:
        srv.short["/w.inter"] = 20  # the server sends 20 bytes then closes
        with pytest.raises(DownloadError, match=rf"truncated: got 20 of {len(body)} bytes") as e:
            prepare(url_card(cards_dir, srv.base + "/w.inter", f"size = {len(body)}"))
    msg = str(e.value)
    assert "\n" not in msg and "/w.inter" in msg and "rerun to resume" in msg
    dl = tmp_path / "home" / "downloads" / "w" / "1" / "web"
    assert not (dl / "w.inter").exists() and (dl / "w.inter.part").stat().st_size == 20
    assert_nothing_half_written(tmp_path)


@pytest.mark.network
def test_wrong_checksum(tmp_path, cards_dir, fast):
    with serve({"/w.inter": MMREC_OK.encode()}) as srv:
        with pytest.raises(DownloadError, match=r"w\.inter: sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
            prepare(url_card(cards_dir, srv.base + "/w.inter", 'sha256 = "' + "0" * 64 + '"'))
    assert not (tmp_path / "home" / "downloads" / "w" / "1" / "web" / "w.inter").exists()
    assert_nothing_half_written(tmp_path)


@pytest.mark.network
@pytest.mark.parametrize("member,message", [
    ("../escape.inter", r"w\.zip: member '\.\./escape\.inter' contains '\.\.' \(path traversal\)"),
    ("/abs/w.inter", r"w\.zip: member '/abs/w\.inter' has an absolute path"),
])
def test_malicious_archive(tmp_path, cards_dir, fast, member, message):
    with serve({"/w.zip": zip_of({"w.inter": MMREC_OK.encode(), member: b"x"})}) as srv:
        with pytest.raises(DataError, match=message) as e:
            prepare(url_card(cards_dir, srv.base + "/w.zip", "archive = true"))
    assert "\n" not in str(e.value)
    assert not list(tmp_path.rglob("escape.inter")) and not list(tmp_path.rglob("extracted"))
    assert_nothing_half_written(tmp_path)


@pytest.mark.network
def test_corrupt_archive(tmp_path, cards_dir, fast):
    with serve({"/w.zip": b"PK\x03\x04 this is not really a zip"}) as srv:
        with pytest.raises(DataError, match=r"w\.zip: cannot extract: BadZipFile"):
            prepare(url_card(cards_dir, srv.base + "/w.zip", "archive = true"))
    assert_nothing_half_written(tmp_path)


# ----------------------------------------------------------------------------- import
def test_bad_import_leaves_no_card(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "mine.inter").write_text(MMREC_OK)
    np.save(d / "image_feat.npy", np.ones((5, 2)))  # 5 rows for 2 items
    with pytest.raises(DataError, match=r"image_feat\.npy: feature file has 5 rows but the interaction file has 2"):
        import_dataset("mmrec", d, "mine")
    assert not list(local_cards_dir().glob("*mine*"))
    assert_nothing_half_written(tmp_path)


def test_cli_prints_one_error_line(tmp_path, cards_dir):
    fmt, files, extra, _ = LOCAL_CASES["id gap"]
    write_case(tmp_path, cards_dir, fmt, files, extra)
    p = run_cli("prepare", "m", check=False)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: ") and "field 'itemID'" in p.stderr


def test_pickle_is_never_loaded(tmp_path, cards_dir):
    """A pickled .npy that would run code on load is refused before anything runs."""

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    payload = io.BytesIO()
    np.save(payload, np.array([Boom(), None], dtype=object), allow_pickle=True)
    fmt, files, extra, _ = LOCAL_CASES["pickled feature file"]
    write_case(tmp_path, cards_dir, fmt, {**files, "f.npy": payload.getvalue()}, extra)
    with pytest.raises(DataError, match="cannot read as a plain numeric"):
        prepare(find_card("m"))
    assert not (tmp_path / "pwned").exists()
