"""A format from a third-party distribution: registered by entry point only, then used by `mmbench import`."""
from __future__ import annotations

import os
import sys

import pytest

from mmbench import registry
from mmbench.data.cards import find_card
from mmbench.data.exchange import import_dataset

from ...conftest import run_cli
from .common import raw_pairs

# LightGCN's layout (train.txt / test.txt, one line per user: `user item item ...`), as a plugin writes it
TOY_FORMAT = '''
import numpy as np
from mmbench.data.formats import Format, Interactions, Layout


class AdjacencyLists(Format):
    """train.txt and test.txt, one line per user: `user item item ...`."""

    def read_interactions(self, card, folder):
        user, item, label, line = [], [], [], []
        for split, role in ((0, "train"), (2, "test")):
            for n, row in enumerate((folder / card.files[role]).read_text().splitlines(), start=1):
                u, *liked = row.split()
                user += [u] * len(liked)
                item += liked
                label += [split] * len(liked)
                line += [n] * len(liked)
        return Interactions(np.array(user), np.array(item), None, None, np.array(line),
                            str(folder / card.files["train"]), np.array(label, dtype=np.int8))

    def detect(self, folder, name):
        return Layout({"train": "train.txt", "test": "test.txt"})
'''
TRAIN = "0 10 11 12\n1 10 13\n2 11 12 13 14\n"
TEST = "0 13\n1 11\n2 10\n"


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    """An installed distribution `mmbench-toyformat` registering format `toy` (a dist-info folder on sys.path)."""
    root = tmp_path / "site"
    info = root / "mmbench_toyformat-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mmbench-toyformat\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mmbench.formats]\ntoy = toy_format:AdjacencyLists\n")
    (root / "toy_format.py").write_text(TOY_FORMAT)
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop("toy_format", None)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "lightgcn"
    d.mkdir()
    (d / "train.txt").write_text(TRAIN)
    (d / "test.txt").write_text(TEST)
    return d


def _by_hand(text: str) -> list[tuple[str, str]]:
    return sorted((ln.split()[0], i) for ln in text.splitlines() for i in ln.split()[1:])


def test_plugin_format_imports_a_folder(toy_plugin, folder):
    entry = registry.get_entry("formats", "toy")
    assert (entry.distribution, entry.version) == ("mmbench-toyformat", "0.1")
    assert "toy_format" not in sys.modules  # listing reads metadata only
    ds = import_dataset("toy", folder, "lgcn")
    train, test = _by_hand(TRAIN), _by_hand(TEST)
    pairs = train + test
    st = ds.stats
    assert (st["users"], st["items"], st["interactions"]) == (len({u for u, _ in pairs}), len({i for _, i in pairs}),
                                                             len(pairs)) == (3, 5, 12)
    assert {k: v["interactions"] for k, v in st["splits"].items()} == {"train": 9, "valid": 0, "test": 3}
    assert raw_pairs(ds, "train") == train and raw_pairs(ds, "test") == test
    card = find_card("lgcn")
    assert card.format == "toy" and card.split == {"method": "preset", "column": "file"}
    assert sorted(card.sources[0]["checksums"]) == ["test.txt", "train.txt"]


def test_cli_import_with_a_plugin_format(toy_plugin, folder, tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(toy_plugin), os.environ.get("PYTHONPATH", "")])}
    p = run_cli("import", folder, "--format", "toy", "--name", "lgcn-cli", env=env)
    assert "imported lgcn-cli: 3 users, 5 items, 12 interactions (train/valid/test 9 / 0 / 3)" in p.stdout
    p = run_cli("export", "lgcn-cli", "--to", "toy", "--out", tmp_path / "out", env=env, check=False)
    assert p.returncode == 2 and "format 'toy' cannot be exported" in p.stderr and "mmrec, recbole" in p.stderr
    p = run_cli("import", folder, "--format", "tyo", "--name", "x", env=env, check=False)
    assert p.returncode == 2 and "unknown dataset format 'tyo'; did you mean 'toy'?" in p.stderr
