"""The quality bar: every bad input gives ONE clear line naming file / line / field, and leaves nothing
half-written (no prepared dataset, no staging folder, no finished download, no imported card)."""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

from mmbench.data import sources
from mmbench.data.cards import find_card, list_cards
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


FORGED = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 4), }" + b" " * 45 + b"\n"
RB = "user_id:token\titem_id:token\trating:float\n"
RB_OK = RB + "a\tx\t1\na\ty\t1\nb\tx\t1\nb\ty\t1\n"
RANDOM = '[split]\nmethod = "random_ratio"\nratios = [0.5, 0.0, 0.5]\nseed = 1\n'


def npz(a) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, a=a)
    return buf.getvalue()


# the same table for inputs the first one did not cover (ids, numbers, .npy files, special files, cards)
LOCAL_CASES.update({
    "id beyond int64": ("mmrec", {"m.inter": MMREC_OK.replace("1\t0\t1\t2", "1\t99999999999999999999999\t1\t2")},
                        PRESET, r"m\.inter:5: field 'itemID': id '9+' is beyond the catalogue limit \(ids 0\.\.99,999,999\)"),
    "id beyond the catalogue limit": ("mmrec", {"m.inter": MMREC_OK.replace("1\t0\t1\t2", "1\t100000000\t1\t2")},
                                      PRESET, r"m\.inter:5: field 'itemID': id '100000000' is beyond the catalogue"),
    "id in Arabic-Indic digits": ("mmrec", {"m.inter": MMREC_OK.replace("1\t0\t1\t2", "1\t\u0661\t1\t2")}, PRESET,
                                  r"m\.inter:5: field 'itemID': id '\u0661' is not a non-negative integer in ASCII"),
    "id with leading zeros": ("mmrec", {"m.inter": MMREC_OK.replace("1\t0\t1\t2", "1\t00\t1\t2")}, PRESET,
                              r"m\.inter:5: field 'itemID': id '00' has leading zeros"),
    "NUL inside an id": ("recbole", {"m.inter": RB_OK.replace("b\ty", "b\ty\x00")}, RANDOM,
                         r"m\.inter:5: field 'item_id': id 'y\\x00' holds the control character U\+0000"),
    "id of 300 characters": ("recbole", {"m.inter": RB_OK.replace("b\ty", "b\t" + "y" * 300)}, RANDOM,
                             r"m\.inter:5: field 'item_id': id 'y+' has 300 characters \(at most 256\)"),
    "rating 1e300 (beyond float32)": ("recbole", {"m.inter": RB_OK.replace("a\ty\t1", "a\ty\t1e300")}, RANDOM,
                                      r"m\.inter:3: field 'rating' is out of range \(\|x\| <= 3\.403e\+38\): '1e300'"),
    "rating in Arabic-Indic digits": ("recbole", {"m.inter": RB_OK.replace("a\ty\t1", "a\ty\t\u0665")}, RANDOM,
                                      r"m\.inter:3: field 'rating' is not an ASCII number: '\u0665'"),
    "zero-width feature file": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.ones((2, 0)))}, FEATURE + PRESET,
                                r"f\.npy: feature matrix has shape \(2, 0\), expected \(n_items, dim\) with dim >= 1"),
    "feature value 1e300 (not inf)": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npy(np.array([[1e300], [0.0]]))},
                                      FEATURE + PRESET, r"f\.npy: value 1e\+300 at row 0, column 0 is outside the "
                                                        r"float32 range"),
    ".npz under a .npy name": ("mmrec", {"m.inter": MMREC_OK, "f.npy": npz(np.ones((2, 2)))}, FEATURE + PRESET,
                               r"f\.npy: cannot read as a plain numeric \.npy \(the magic string is not correct"),
    "forged .npy header": ("mmrec", {"m.inter": MMREC_OK,
                                     "f.npy": b"\x93NUMPY\x01\x00" + len(FORGED).to_bytes(2, "little") + FORGED + b"\0" * 64},
                           FEATURE + PRESET, r"f\.npy: .*the header says shape \(100000000000, 4\) .* but 64 bytes"),
    "folder where a file is expected": ("mmrec", {"m.inter": MMREC_OK, "f.npy": None}, FEATURE + PRESET,
                                        r"f\.npy: is a folder, expected a regular file"),
    "fifo as the interaction file": ("mmrec", {"m.inter": "FIFO"}, PRESET,
                                     r"m\.inter: is a fifo \(named pipe\), expected a regular file"),
    "symlink to a device outside the source": ("mmrec", {"m.inter": MMREC_OK, "f.npy": "->/dev/zero"}, FEATURE + PRESET,
                                               r"m\.toml: file 'f\.npy' points outside"),
    "card file outside its source": ("mmrec", {"m.inter": MMREC_OK}, '[features]\n"image/f" = "../../f.npy"\n' + PRESET,
                                     r"m\.toml: file '\.\./\.\./f\.npy' points outside"),
    "negative split seed": ("recbole", {"m.inter": RB_OK}, RANDOM.replace("seed = 1", "seed = -1"),
                            r"m\.toml: split\.seed must be an integer in 0\.\.2\*\*63-1, got -1"),
    "NaN split ratio": ("recbole", {"m.inter": RB_OK}, RANDOM.replace("0.0", "nan"),
                        r"m\.toml: 'split\.ratios' must be finite, got \[0\.5, nan, 0\.5\]"),
})


def write_case(tmp_path, cards_dir, fmt, files, extra):
    """The data folder (content None: a folder; "FIFO": a named pipe; "->target": a symlink) and card m."""
    d = tmp_path / "data"
    d.mkdir()
    for name, content in files.items():
        if content is None:
            (d / name).mkdir()
        elif content == "FIFO":
            os.mkfifo(d / name)
        elif isinstance(content, str) and content.startswith("->"):
            (d / name).symlink_to(content[2:])
        else:
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


# ----------------------------------------------------------------------------- RecBole split files
@pytest.mark.parametrize("train,test,message", [
    ("a\tx\t1\na\ty\t1\nb\tx\t1\n", "b\ty\t1\na\tx\t1\n",
     r"s\.test\.inter:3: duplicate \(user, item\) pair 'a', 'x' at \S+s\.train\.inter:2 and here"),
    ("a\tx\t1\na\ty\t1\nb\tx\t1\nb\tz\t1\n", "b\ty\t-1\n", r"s\.test\.inter:2: 1 interactions have rating <= 0"),
])
def test_split_files_name_their_own_file_and_line(tmp_path, cards_dir, train, test, message):
    """Rows of several files keep their file: an error names the file the line number belongs to."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "s.train.inter").write_text(RB + train)
    (d / "s.test.inter").write_text(RB + test)
    (cards_dir / "s.toml").write_text(f'''[dataset]
name = "s"
version = "1"
title = "t"
license = "test"
format = "recbole"
modalities = ["interactions"]
[[sources]]
name = "local"
path = "{d.as_posix()}"
[files]
train = "s.train.inter"
test = "s.test.inter"
[split]
method = "preset"
column = "file"
''')
    with pytest.raises(DataError, match=message):
        prepare(find_card("s"))
    assert_nothing_half_written(tmp_path)


# ----------------------------------------------------------------------------- names in cards and imports
@pytest.mark.parametrize("field,value,message", [
    ("name", "../../escape", r"m\.toml: dataset\.name '\.\./\.\./escape' is not a valid name"),
    ("name", "bad\\u0007name", r"m\.toml: dataset\.name 'bad\\x07name' is not a valid name"),
    ("version", "1/../../x", r"m\.toml: dataset\.version '1/\.\./\.\./x' is not a valid name"),
    ("name", "x" * 101, r"m\.toml: dataset\.name 'x+' is not a valid name; use 1-100 ASCII"),
])
def test_card_names_follow_the_name_rule(tmp_path, cards_dir, field, value, message):
    write_case(tmp_path, cards_dir, "mmrec", {"m.inter": MMREC_OK}, PRESET)
    card = cards_dir / "m.toml"
    card.write_text(card.read_text().replace(f'{field} = "{"m" if field == "name" else "1"}"', f'{field} = "{value}"', 1))
    with pytest.raises(MMBenchError, match=message):
        list_cards()
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("name", ["x" * 300, "abc\n", "a/b", "..", "caf\u00e9", "\u0661"])
def test_import_names_follow_the_name_rule(tmp_path, name):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "mine.inter").write_text(MMREC_OK)
    with pytest.raises(MMBenchError, match=r"dataset name \(--name\) .* is not a valid name; use 1-100 ASCII") as e:
        import_dataset("mmrec", d, name)
    assert "\n" not in str(e.value)
    assert not list(tmp_path.rglob("*.toml*"))


@pytest.mark.parametrize("info,message", [
    ('[1, 2]', r"mmbench\.json: top level must be a table"),
    ('{"features": {"image/x": 5}}', r"mmbench\.json: features\.image/x must be a table"),
    ('{"features": {"image/x": {"file": "../../../etc/passwd"}}}',
     r"mmbench\.json: features\.image/x\.file '\.\./\.\./\.\./etc/passwd' points outside"),
    ('{"features": {"Image/../x": {"file": "a.npy"}}}', r"mmbench\.json: feature key 'Image/\.\./x' is not valid"),
    ('{"name": 5}', r"mmbench\.json: 'name' must be str, got int"),
    ('{"name": "../x"}', r"mmbench\.json: name '\.\./x' is not a valid name"),
    ('{"positive_threshold": "x"}', r"mmbench\.json: 'positive_threshold' must be float or NoneType, got str"),
    ('{"dataset": {"title": ["t"]}}', r"mmbench\.json: 'dataset\.title' must be str, got list"),
    ('{"unknown": 1}', r"mmbench\.json: unknown key 'unknown'"),
    ('{"a": ' * 5000 + '1' + '}' * 5000, r"mmbench\.json: invalid JSON: RecursionError"),
])
def test_malformed_export_info_is_one_line(tmp_path, info, message):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "mine.inter").write_text(MMREC_OK)
    (d / "mmbench.json").write_text(info)
    with pytest.raises(MMBenchError, match=message) as e:
        import_dataset("mmrec", d, "mine")
    assert "\n" not in str(e.value)
    assert_nothing_half_written(tmp_path)
