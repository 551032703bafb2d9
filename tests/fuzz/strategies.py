"""Generated malformed inputs: delimited files built from a valid one by a few mutations."""
from __future__ import annotations

from hypothesis import strategies as st

# values that break a rule somewhere (ids, numbers, labels), beside plain valid ones
ODD = ["", " ", "-1", "007", "1.5", "1e3", "99999999999999999999", "9" * 30, "100000000", "\u0661", "\u0662\u0663",
       "1_0", "+5", "a7", "x\x00", "\x00", "\x01y", "\x7f", "\u2028", "\u00e9", "\u221e", "\uff11", "nan", "inf",
       "-inf", "NaN", "1e300", "1e39", "-1e39", "1e5000", "3.4028235e38", "0x1", "5 ", "2.0", "3", "x" * 300]
FIELD = st.one_of(st.integers(0, 4).map(str), st.sampled_from(ODD),
                  st.text(alphabet=st.characters(exclude_characters="\t\n\r", codec="utf-8"), max_size=6))


@st.composite
def mutated(draw, header: list[str], rows: list[list[str]], sep: str = "\t", max_mutations: int = 3):
    """``(header, rows, bytes)``: ``rows`` under ``header`` with 0..``max_mutations`` changes -- a field
    replaced, a field added or dropped, a row removed or repeated, the header shuffled -- then
    maybe a file-level fault (CRLF ends, a BOM, a byte that is not UTF-8, a blank line)."""
    header, rows = list(header), [list(r) for r in rows]
    for _ in range(draw(st.integers(0, max_mutations))):
        kind = draw(st.sampled_from(["field", "field", "field", "add", "drop", "delrow", "duprow", "header"]))
        if not rows:
            break
        i = draw(st.integers(0, len(rows) - 1))
        if kind == "field":
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = draw(FIELD)
        elif kind == "add":
            rows[i].append(draw(FIELD))
        elif kind == "drop" and len(rows[i]) > 1:
            rows[i].pop(draw(st.integers(0, len(rows[i]) - 1)))
        elif kind == "delrow":
            rows.pop(i)
        elif kind == "duprow":
            rows.insert(i, list(rows[i]))
        elif kind == "header":
            header = draw(st.permutations(header))
    text = "\n".join(sep.join(r) for r in [header, *rows]) + "\n"
    data = text.encode("utf-8")
    fault = draw(st.sampled_from([None, None, None, "crlf", "bom", "latin", "blank", "empty"]))
    if fault == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif fault == "bom":
        data = b"\xef\xbb\xbf" + data
    elif fault == "latin":
        data = data[: len(data) // 2] + b"\xff" + data[len(data) // 2:]
    elif fault == "blank":
        data = data + b"\n\n"
    elif fault == "empty":
        data = b""
    return header, rows, data, fault


def table(n_users: int, n_items: int, fields) -> list[list[str]]:
    """A small valid table: every user with every item, ``fields(u, i)`` giving the row."""
    return [fields(u, i) for u in range(n_users) for i in range(n_items)]
