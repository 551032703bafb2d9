"""The worked examples of docs/architecture.md run and do what the page says; every test the docs
name (``tests/...py::test_name``) exists."""
import re

import numpy as np
import pytest
import torch

from .conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DOC = (ROOT / "docs" / "architecture.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


def _run(heading: str) -> dict:
    """Execute the python block under ``### heading``."""
    section = DOC.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    ns: dict = {}
    exec(compile(code, f"docs/architecture.md ({heading})", "exec"), ns)
    return ns


def test_the_model_example_passes_the_conformance_checks():
    from mmbench.check import check_dataset, check_model, temporary_home
    from mmbench.models import model_params

    cls = _run("A model")["MyModel"]
    assert model_params(cls)["epochs"].default == 300 and model_params(cls)["embedding_dim"].space == (16, 32, 64)
    with temporary_home():
        results = check_model(cls, dataset=check_dataset())
    assert all(r.passed for r in results), [str(r) for r in results if not r.passed]


def test_the_metric_example_is_dcg_by_hand():
    from mmbench.evaluate.metrics import Batch

    dcg = _run("A metric")["DCG"]
    hits = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    got = dcg.fn(Batch(hits, torch.tensor([2.0, 1.0], dtype=torch.float64)), 3)
    assert got.tolist() == pytest.approx([1 / np.log2(2) + 1 / np.log2(4), 0.0])


def test_the_encoder_example_counts_characters():
    enc = _run("An encoder")["CharCounts"](size=4)
    out = enc.encode(["ab", "aaaa"])
    assert enc.key == "text/char-counts" and out.shape == (2, 4)
    assert out[1, ord("a") % 4] == 4 and out[0].sum() == 2


def test_the_format_example_reads_pairs(tmp_path):
    fmt = _run("A format")["Pairs"]()
    (tmp_path / "pairs.txt").write_text("u1 i1\nu1 i2\nu2 i1\n")

    class Card:
        files = {"interactions": "pairs.txt"}

    inter = fmt.read_interactions(Card(), tmp_path)
    assert len(inter.user) == 3 and fmt.detect(tmp_path, "x").files == {"interactions": "pairs.txt"}


def test_the_card_example_is_a_valid_card(tmp_path):
    from mmbench.data.cards import load_card

    (toml,) = _blocks("toml")
    tomllib.loads(toml)
    path = tmp_path / "my-data.toml"
    path.write_text(toml.replace('format = "pairs"', 'format = "recbole"').replace('"..."', '"' + "0" * 64 + '"'))
    card = load_card(path)
    assert (card.name, card.split["method"]) == ("my-data", "random_ratio")


# --- docs/reliability.md names, for each guarantee, the test that proves it: those names stay true ---

REFERENCE_DOCS = ("reliability.md", "leaderboards.md", "architecture.md")
_REF = re.compile(r"((?:tests|mmbench)/[\w/]*\.py)?::(\w[\w.*]*)|((?:tests|mmbench)/[\w/]*\.py)")


def _references(doc: str) -> list[tuple[int, str, str | None]]:
    """(line, path, name) for every `` `path` `` and `` `path::name` `` (in code spans) of
    ``docs/<doc>``. A ``::name`` without a path belongs to the last path named before it in the
    same table cell (or line), else to the last one in the same column of the table's rows
    above (a row may start with ``::name`` under its neighbour's file); a parametrize id
    (``::test_x[case]``) is read as ``test_x``."""
    refs, column_paths = [], {}
    for lineno, line in enumerate((ROOT / "docs" / doc).read_text().splitlines(), 1):
        if not line.startswith("|"):
            column_paths = {}  # a new table (or none)
        for col, cell in enumerate(line.split("|")):
            path = None
            for span in re.findall(r"`([^`]*)`", cell):
                for m in _REF.finditer(span):
                    named, name, alone = m.groups()
                    if named or alone:
                        path = column_paths[col] = named or alone
                    refs.append((lineno, path or column_paths.get(col, "(no path before it)"), name))
    return refs


def _defines(source: str, name: str, test_file: bool) -> bool:
    """``source`` defines ``name`` (a test function in a test file; else each dotted part as a
    def or class); ``*`` matches any characters."""
    parts = [name] if test_file else name.split(".")
    for part in parts:
        pattern = re.escape(part).replace(r"\*", r"\w*")
        kinds = r"(?:async\s+)?def" if test_file else r"(?:(?:async\s+)?def|class)"
        if not re.search(rf"^\s*{kinds}\s+{pattern}\b", source, flags=re.M):
            return False
    return not test_file or name.startswith("test")


@pytest.mark.parametrize("doc", REFERENCE_DOCS)
def test_every_test_the_docs_name_exists(doc):
    refs = _references(doc)
    if doc == "reliability.md":
        assert len(refs) > 50, "the parser found too few references: has the page's format changed?"
    stale = []
    for lineno, path, name in refs:
        file = ROOT / path
        if not file.is_file():
            stale.append(f"docs/{doc}:{lineno}: {path}{'::' + name if name else ''}: no such file")
        elif name and not _defines(file.read_text(), name, path.startswith("tests/")):
            stale.append(f"docs/{doc}:{lineno}: {path}::{name}: {path} does not define it")
    assert not stale, "\n".join(stale)
