"""Importers get generated malformed files (MMRec, RecBole, MovieLens, HetRec, MicroLens): each ends
in success on valid data or one error line naming the file, never a traceback, nothing left behind
(:mod:`tests.fuzz.oracle`)."""
from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from .oracle import F32_MAX, check_outcome, check_prepared, invoke, is_ascii_number, sandbox, write_files
from .strategies import mutated, table

ATOMIC = ("token", "float", "token_seq", "float_seq")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LIMITS = {"rating": F32_MAX, "timestamp": 2.0 ** 63}


def _token_ok(v: str) -> bool:
    return bool(v.strip()) and len(v) <= 256 and not CONTROL.search(v)


def _index_ok(v: str) -> bool:
    return bool(re.fullmatch(r"0|[1-9][0-9]{0,7}", v))


def _rows_ok(names: list[str], rows: list[list[str]], ids, strip: bool) -> bool:
    """Independent reading of the rules a successful import must have enforced on ``rows``."""
    for r in rows:
        if not "".join(r).strip():
            continue  # a blank line is skipped
        if len(r) != len(names):
            return False
        vals = dict(zip(names, (f.strip() if strip else f for f in r)))
        if not all(_token_ok(vals[c]) and ids(vals[c]) for c in ("userID", "itemID", "user_id", "item_id")
                   if c in vals):
            return False
        for c, limit in LIMITS.items():
            if c in vals and not is_ascii_number(vals[c], limit):
                return False
        if "x_label" in vals and not (is_ascii_number(vals["x_label"], 3) and float(vals["x_label"]) in (0, 1, 2)):
            return False
    return True


MMREC = table(3, 3, lambda u, i: [str(u), str(i), "1", str(i)])


@given(mutated(["userID", "itemID", "rating", "x_label"], MMREC))
def test_mmrec_import(case):
    header, rows, data, fault = case
    with sandbox() as root:
        write_files(root / "data", {"m.inter": data})
        r = invoke(root, "import", "--format", "mmrec", str(root / "data"), "--name", "m")
        if check_outcome(r, root, ("m.inter", str(root / "data"))):
            assert fault != "latin" and _rows_ok([h.strip() for h in header], rows, _index_ok, strip=True)
            check_prepared(root / "home")


RECBOLE = table(3, 3, lambda u, i: [f"u{u}", f"i{i}", "4", str(100 + i)])
RB_HEADER = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]


@given(mutated(RB_HEADER, RECBOLE), st.booleans())
def test_recbole_import(case, split_files):
    header, rows, data, fault = case
    with sandbox() as root:
        if split_files:  # the benchmark layout: the mutated file is the test split
            ok = "\n".join("\t".join(r) for r in [RB_HEADER, *RECBOLE[:6]]) + "\n"
            write_files(root / "data", {"m.train.inter": ok, "m.test.inter": data})
        else:
            write_files(root / "data", {"m.inter": data})
        r = invoke(root, "import", "--format", "recbole", str(root / "data"), "--name", "m")
        if check_outcome(r, root, (".inter", str(root / "data"))):
            names = [h.partition(":")[0] for h in header]
            typed = all(h.partition(":")[2] in ATOMIC for h in header)
            assert fault != "latin" and typed and _rows_ok(names, rows, lambda v: True, strip=False)
            check_prepared(root / "home")


CARD = '''[dataset]
name = "m"
version = "1"
title = "t"
license = "test"
format = "{fmt}"
modalities = ["interactions"]
[[sources]]
name = "local"
path = "{data}"
[files]
{files}
[split]
method = "random_ratio"
ratios = [0.5, 0.25, 0.25]
seed = 1
'''


def _prepare_with_card(root, fmt: str, files: str, data: dict[str, bytes | str]):
    write_files(root / "data", data)
    (root / "cards" / "m.toml").write_text(CARD.format(fmt=fmt, data=(root / "data").as_posix(), files=files))
    return invoke(root, "prepare", "m")


ML = table(4, 4, lambda u, i: [str(u + 1), str(i + 1), "3", str(880000000 + i)])


@given(mutated([], ML, max_mutations=4), st.sampled_from(["\t", "::"]))
def test_movielens_prepare(case, sep):
    _, rows, data, fault = case
    data = data.split(b"\n", 1)[-1]  # u.data and ratings.dat have no header line (here an empty one)
    if sep == "::":
        data = data.replace(b"\t", b"::")
    with sandbox() as root:
        r = _prepare_with_card(root, "movielens-raw", 'interactions = "u.data"', {"u.data": data})
        if check_outcome(r, root, ("u.data",)):
            check_prepared(root / "home")


HETREC = table(4, 4, lambda u, i: [str(u + 2), str(i + 50), str(10 * (i + 1))])


@given(mutated(["userID", "artistID", "weight"], HETREC))
def test_hetrec_prepare(case):
    header, rows, data, fault = case
    with sandbox() as root:
        r = _prepare_with_card(root, "hetrec-lastfm", 'interactions = "user_artists.dat"', {"user_artists.dat": data})
        if check_outcome(r, root, ("user_artists.dat",)):
            check_prepared(root / "home")


MICROLENS = table(4, 4, lambda u, i: [str(u + 1), str(i + 1), str(1600000000 + i)])


@given(mutated(["user", "item", "timestamp"], MICROLENS, sep=","))
def test_microlens_prepare(case):
    header, rows, data, fault = case
    with sandbox() as root:
        r = _prepare_with_card(root, "microlens", 'interactions = "pairs.csv"', {"pairs.csv": data})
        if check_outcome(r, root, ("pairs.csv",)):
            check_prepared(root / "home")
