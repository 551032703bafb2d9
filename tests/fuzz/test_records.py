"""Run records, mutated: reading one returns a valid record or raises one error line naming the file
(``mmbench.records`` belongs to the results layer; this property holds it to the same bar)."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmbench.errors import MMBenchError
from mmbench.records import read_record

from .oracle import invoke, sandbox, write_files

ODD_JSON = [None, True, 0, -1, 1.5, "x", "", [], {}, [1, "a"], {"a": 1}, "NaN", 10 ** 30]


@pytest.fixture(scope="module")
def record_text():
    """A real record: pop run on a tiny dataset."""
    with sandbox() as root:
        write_files(root / "data", {"m.inter": "userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t0\n"
                                              "1\t0\t1\t2\n"})
        assert invoke(root, "import", "--format", "mmrec", str(root / "data"), "--name", "m").exit_code == 0
        assert invoke(root, "run", "-m", "pop", "-d", "m", "--device", "cpu").exit_code == 0
        return next((root / "results").rglob("seed0.json")).read_text()


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))


@given(st.data())
def test_read_record(record_text, tmp_path_factory, data):
    rec = json.loads(record_text)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(rec) if p]
        path = data.draw(st.sampled_from(paths))
        parent = rec
        for k in path[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()):
            parent[path[-1]] = copy.deepcopy(data.draw(st.sampled_from(ODD_JSON)))
        else:
            del parent[path[-1]]
    text = json.dumps(rec)
    if data.draw(st.booleans()):
        text = data.draw(st.sampled_from([text[: len(text) // 2], text.replace("0.", "NaN, ", 1), "[" + text, ""]))
    p = tmp_path_factory.mktemp("rec") / "seed0.json"
    p.write_text(text)
    try:
        read_record(p)
    except MMBenchError as e:
        assert str(e).startswith(f"{p}: ") and "\n" not in str(e)
