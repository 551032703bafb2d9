"""One small committed-style board, run once per session: popularity, the oracle searched
over its declared space (budget 2), a BPR-MF cut at 2 epochs (not converged) and biased MF
on the ratings; tests copy its folder and tamper with the copy."""
import shutil

import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.suite import load_suite, run_suite

from ..helpers import planted_rows, write_card, write_inter
from ..suite.fakes import oracle_installed

SUITE = '''[suite]
name = "trust"
version = 1
description = "records under scrutiny"
results = "records"
{head}
[dataset]
name = "toy"
version = "1"
{dataset}
[protocol]
metrics = ["ndcg@10", "recall@10"]
main_metric = "ndcg@10"

[run]
seeds = [0, 1]
device = "cpu"

{tuning}

[[models]]
name = "pop"

[[models]]
name = "oracle"

[[models]]
name = "bpr"
params = {{ epochs = 2, patience = 5, embedding_dim = 8, batch_size = 256 }}
'''


def write_suite(folder, head="", dataset="", tuning="[tuning]\nconfigurations = 2"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.toml").write_text(SUITE.format(head=head, dataset=dataset, tuning=tuning), encoding="utf-8")
    return load_suite(folder)


@pytest.fixture(scope="session")
def trust_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    with pytest.MonkeyPatch.context() as mp, oracle_installed(root / "site", mp):
        mp.setenv("MMBENCH_HOME", str(root / "home"))
        cards = root / "cards"
        cards.mkdir()
        mp.setenv("MMBENCH_CARDS", str(cards))
        write_inter(root / "d" / "toy.inter", planted_rows(n_users=40, n_items=30, per_user=10, seed=2))
        write_card(cards, "toy", root / "d")
        ds = prepare(find_card("toy"))
        mp.setenv("ORACLE_DATASET", str(ds.path))
        run_suite(write_suite(root / "suite"), workers=1, echo=lambda *_: None)
        yield root


@pytest.fixture
def trust(trust_root, tmp_path, monkeypatch):
    """A copy of the board's suite folder (records included), with the oracle registered,
    the toy card and prepared dataset reachable and records marked as from a clean tree."""
    with oracle_installed(trust_root / "site", monkeypatch):
        monkeypatch.setenv("MMBENCH_HOME", str(trust_root / "home"))
        monkeypatch.setenv("MMBENCH_CARDS", str(trust_root / "cards"))
        prepared = [d for d in (trust_root / "home" / "prepared" / "toy" / "v1").iterdir() if d.is_dir()]
        monkeypatch.setenv("ORACLE_DATASET", str(prepared[0]))
        shutil.copytree(trust_root / "suite", tmp_path / "suite")
        yield load_suite(tmp_path / "suite")
