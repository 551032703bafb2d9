"""``.npy`` headers and bodies, forged: :func:`mmbench.features.store.load_npy` either returns exactly
what the bytes hold or refuses with one line naming the file; it never allocates more than the
file holds, never unpickles, never reads a ``.npz``. The same files imported as features end the
same way through the CLI."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmbench.errors import DataError
from mmbench.features.store import load_npy

from .oracle import check_outcome, check_prepared, invoke, sandbox, write_files

SHAPES = st.one_of(st.tuples(st.integers(0, 4), st.integers(0, 3)), st.tuples(st.integers(-3, 10 ** 12)),
                   st.tuples(), st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)),
                   st.tuples(st.integers(10 ** 6, 10 ** 18), st.integers(10 ** 6, 10 ** 18)))
DESCR = st.sampled_from(["<f4", "<f8", ">f8", "<i8", "|b1", "|u1", "<c8", "|O", "<U3", "|V4", "[('a', '<f4')]",
                         "<f16", "xx", "<M8[s]"])


@st.composite
def npy_bytes(draw):
    """A ``.npy``-like file: a header from parts (any of them wrong) and a body of some length."""
    kind = draw(st.sampled_from(["header", "header", "header", "real", "npz", "garbage", "truncated"]))
    if kind in ("real", "truncated"):
        arr = (np.arange(draw(st.integers(0, 12))) % 3).astype(draw(st.sampled_from(["<f4", "<i8", "|b1"]))).reshape(-1, 1)
        buf = io.BytesIO()
        np.save(buf, arr)
        data = buf.getvalue()
        return data[: draw(st.integers(0, len(data) - 1))] if kind == "truncated" else data
    if kind == "npz":
        buf = io.BytesIO()
        np.savez(buf, a=np.ones((2, 2)))
        return buf.getvalue()
    if kind == "garbage":
        return draw(st.binary(max_size=64))
    shape, descr = draw(SHAPES), draw(DESCR)
    fortran = draw(st.sampled_from(["False", "True", "0", "'x'"]))
    head = "{'descr': %s, 'fortran_order': %s, 'shape': %r, }" % (
        descr if descr.startswith("[") else repr(descr), fortran, shape)
    if draw(st.booleans()):
        head = draw(st.sampled_from([head.replace("'shape'", "'shap'"), head[:-3], "{" * 200, "[1, 2]", "{}",
                                     head + "os.system('x')"]))
    version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0), (9, 9)]))
    raw = head.encode("latin-1") + b"\n"
    length = len(raw).to_bytes(2 if version[0] == 1 else 4, "little")
    body = draw(st.binary(max_size=80))
    return b"\x93NUMPY" + bytes(version) + length + raw + body


@given(npy_bytes())
def test_load_npy(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("npy") / "f.npy"
    p.write_bytes(data)
    try:
        arr = load_npy(p)
    except DataError as e:
        assert str(e).startswith(f"{p}: ") and "\n" not in str(e)
        return
    assert arr.dtype.kind in "biufc" and not arr.dtype.hasobject
    assert math.prod(arr.shape) * arr.dtype.itemsize <= len(data)  # never more than the file holds
    assert np.array_equal(arr, np.load(p, allow_pickle=False))  # what numpy itself reads from these bytes


def test_npz_and_pickle_are_refused(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, a=np.ones(2))
    (tmp_path / "z.npy").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match=r"z\.npy: cannot read as a plain numeric \.npy \(the magic string"):
        load_npy(tmp_path / "z.npy")
    np.save(tmp_path / "o.npy", np.array([{}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"o\.npy: .*it holds object values"):
        load_npy(tmp_path / "o.npy")


def test_forged_shape_allocates_nothing(tmp_path):
    """A header claiming 10**12 x 10**6 floats over a 16-byte body is refused from the header alone."""
    head = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 1000000), }"
    head += b" " * (117 - len(head)) + b"\n"
    (tmp_path / "f.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + b"\0" * 16)
    with pytest.raises(DataError, match=r"f\.npy: .*header says shape \(1000000000000, 1000000\).* but 16 bytes"):
        load_npy(tmp_path / "f.npy")


MMREC_OK = "userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n1\t0\t1\t2\n"


@given(npy_bytes())
def test_feature_file_import(data):
    with sandbox() as root:
        write_files(root / "data", {"m.inter": MMREC_OK, "image_feat.npy": data})
        r = invoke(root, "import", "--format", "mmrec", str(root / "data"), "--name", "m")
        if check_outcome(r, root, ("image_feat.npy",)):
            check_prepared(root / "home")
