"""Test doubles installed the way a plugin is: a fake distribution (``*.dist-info`` with
``entry_points.txt``) on ``sys.path``, so suites name them like any registered model."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

# A model that cheats on purpose: it ranks first the items of one split of the prepared
# dataset (``target``), optionally blurred by seeded noise. Scoring the valid items wins on
# validation and loses on test, and the other way round: what a suite keeps shows which
# split the selection looked at. ``oracle-test`` is the same double fixed on the test split.
ORACLE = '''
import os

import numpy as np
import torch

from mmbench.models import Param, Recommender


class Oracle(Recommender):
    target = Param("valid", choices=("valid", "test"), space=("valid", "test"), help="the split it ranks first")
    noise = Param(0.0, ge=0.0, space=(0.0, 0.7), help="seeded noise added to the scores")
    explode = Param(False, help="raise in fit (a failing run)")

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        from mmbench.data.dataset import PreparedDataset

        if self.explode:
            raise RuntimeError("exploded on purpose")
        ds = PreparedDataset.load(os.environ["ORACLE_DATASET"])
        ptr, idx = ds.csr(self.target)
        m = np.zeros((ds.n_users, ds.n_items), dtype=np.float32)
        for u in range(ds.n_users):
            m[u, idx[ptr[u]:ptr[u + 1]]] = 1.0
        m += self.noise * np.random.default_rng(seed).random(m.shape, dtype=np.float32) * 2
        self.m_ = torch.as_tensor(m)
        self.fit_info_ = {"best_epoch": 0, "epochs_run": 0}
        return self

    def score(self, users):
        return self.m_[torch.as_tensor(users, dtype=torch.long)].clone()


class TestOracle(Oracle):
    target = Param("test", choices=("valid", "test"), help="the split it ranks first")
    noise = Param(0.9, ge=0.0, help="seeded noise added to the scores")
'''

CLEAN_TREE = {"sha": "0123456789abcdef0123456789abcdef01234567", "dirty": False}


def install_distribution(root: Path, name: str, modules: dict[str, str], entry_points: dict[str, dict[str, str]]):
    """Write the modules and a ``<name>-0.1.dist-info`` declaring ``entry_points``
    (group -> {entry name: "module:attr"}) into ``root``."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in entry_points.items()),
        encoding="utf-8")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source, encoding="utf-8")


@contextmanager
def oracle_installed(root: Path, mp):
    """The oracles registered as ``oracle`` and ``oracle-test`` (in this process, its
    subprocesses and workers), and records marked as made from a clean tree, while inside."""
    install_distribution(root, "fake-oracle", {"fake_oracle": ORACLE},
                         {"mmbench.models": {"oracle": "fake_oracle:Oracle", "oracle-test": "fake_oracle:TestOracle"}})
    mp.syspath_prepend(str(root))
    mp.setenv("PYTHONPATH", os.pathsep.join([str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    mp.setattr("mmbench.env.git_state", lambda: dict(CLEAN_TREE))
    try:
        yield
    finally:
        sys.modules.pop("fake_oracle", None)


# A suite that shows one content model on two feature sets side by side: two entries of
# item-kNN on a dataset with two text features, each given one, and a third entry given the
# suite's list (both). Its budget searches k, so every entry has search and final records.
TWO_TEXTS = '''[suite]
name = "twotexts"
version = 1

[dataset]
name = "tt"
version = "1"
features = ["text/a", "text/b"]

[protocol]
metrics = ["ndcg@10", "recall@10"]
main_metric = "ndcg@10"

[run]
seeds = [0, 1]
device = "cpu"

[tuning]
configurations = 2

[[models]]
name = "itemknn-cbf"
label = "knn (a)"
features = ["text/a"]

[[models]]
name = "itemknn-cbf"
label = "knn (b)"
features = ["text/b"]

[[models]]
name = "itemknn-cbf"
label = "knn (both)"
'''
TEXT_KEYS = {"knn (a)": ["text/a"], "knn (b)": ["text/b"], "knn (both)": ["text/a", "text/b"]}


def two_texts(root: Path, mp):
    """Prepare the toy dataset ``tt`` with the random text features ``text/a`` and
    ``text/b`` under ``root`` (home and cards set in ``mp``) and write the suite
    :data:`TWO_TEXTS` in ``root/suite``; returns the loaded suite."""
    import numpy as np

    from mmbench.data.cards import find_card
    from mmbench.data.prepare import prepare
    from mmbench.suite import load_suite

    from ..helpers import planted_rows, write_card, write_inter

    mp.setenv("MMBENCH_HOME", str(root / "home"))
    mp.setenv("MMBENCH_CARDS", str(root / "cards"))
    (root / "cards").mkdir(parents=True, exist_ok=True)
    write_inter(root / "d" / "tt.inter", planted_rows(n_users=40, n_items=30, per_user=10, seed=4))
    write_card(root / "cards", "tt", root / "d")
    ds = prepare(find_card("tt"))
    rng = np.random.default_rng(0)
    for key, dim in (("text/a", 6), ("text/b", 5)):
        ds.features.put(key, rng.normal(size=(ds.n_items, dim)), rng.random(ds.n_items) > 0.1)
    (root / "suite").mkdir(parents=True, exist_ok=True)
    (root / "suite" / "suite.toml").write_text(TWO_TEXTS, encoding="utf-8")
    return load_suite(root / "suite")
