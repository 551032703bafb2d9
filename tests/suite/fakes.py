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
