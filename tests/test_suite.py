"""Suites: validation-only model selection (grid and Optuna), resumable runs, status."""
import json

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import ConfigError, RecordError
from mmbench.records import read_record, record_stage, write_record
from mmbench.suite import load_suite, run_suite, status, survey

from .helpers import planted_rows, write_card, write_inter

# A test double that cheats on purpose: it ranks first the items of one split of the prepared
# dataset (``target``), optionally blurred by seeded noise. Scoring the valid items wins on
# validation and loses on test, and the other way round: what the suite keeps shows which
# split the selection looked at.
ORACLE = '''
import os

import numpy as np
import torch

from mmbench.models import Recommender


class Oracle(Recommender):
    def __init__(self, target: str = "valid", noise: float = 0.0):
        self.target = target
        self.noise = noise

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        from mmbench.data.dataset import PreparedDataset

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
'''


@pytest.fixture
def toy(tmp_path, cards_dir, monkeypatch):
    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=40, n_items=30, per_user=10, seed=2))
    write_card(cards_dir, "toy", tmp_path / "d")
    ds = prepare(find_card("toy"))
    monkeypatch.setenv("ORACLE_DATASET", str(ds.path))
    (tmp_path / "oracle.py").write_text(ORACLE, encoding="utf-8")
    return ds


def make_suite(tmp_path, models: str, *, seeds="[0, 1]", extra="", protocol=None, name="t-suite"):
    d = tmp_path / "suite"
    d.mkdir(exist_ok=True)
    oracle = (tmp_path / "oracle.py").as_posix()
    protocol = protocol or 'metrics = ["ndcg@10", "recall@10"]\nmain_metric = "ndcg@10"'
    (d / "suite.toml").write_text(f'''[suite]
name = "{name}"
version = 1
description = "test suite"
results = "records"

[dataset]
name = "toy"
version = "1"

[protocol]
{protocol}

[run]
seeds = {seeds}
device = "cpu"
{extra}
{models.replace("ORACLE", oracle + ":Oracle")}
''', encoding="utf-8")
    return load_suite(d)


GRID = '''[[models]]
name = "pop"

[[models]]
name = "ORACLE"
label = "oracle"
grid = { target = ["valid", "test"], noise = [0.0, 0.7] }
'''


def _quiet(*_):
    pass


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("seed*.json"))


def test_grid_is_chosen_on_validation_and_test_is_run_once(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    assert [r["state"] for r in status(suite)].count("waiting") == 2  # finals wait for the search
    counts = run_suite(suite, echo=_quiet)
    assert counts["done"] == 2 + 4 + 2 and counts["failed"] == 0  # pop x2, 4 candidates x seed 0, chosen x2
    root = suite.results_dir()
    search = [p for p in root.rglob("*.search.json")]
    assert len(search) == 4
    for p in search:
        rec = read_record(p)
        assert record_stage(rec) == "search" and "test" not in rec["metrics"]  # test never evaluated
        assert rec["selection"] == {"method": "grid", "on": "valid", "stage": "search", "metric": "ndcg@10"}
        assert not (p.parent / "seed0.search.per_user.npz").exists()
    finals = [read_record(p) for p in root.rglob("seed*.json") if "oracle" in str(p) and ".search" not in p.name]
    assert sorted(r["seed"] for r in finals) == [0, 1]
    chosen = finals[0]["model"]["params"]
    # the valid oracle without noise is perfect on valid; the test oracle would have won on test
    assert chosen == {"target": "valid", "noise": 0.0}
    sel = finals[0]["selection"]
    assert sel["chosen"] == finals[0]["model"]["params_hash"] and sel["on"] == "valid" and sel["seeds"] == [0]
    vals = {json.dumps(c["params"], sort_keys=True): c["valid"] for c in sel["candidates"]}
    assert len(vals) == 4 and vals['{"noise": 0.0, "target": "valid"}'] == pytest.approx(1.0)
    assert max(vals.values()) == vals['{"noise": 0.0, "target": "valid"}']
    assert finals[0]["metrics"]["valid"]["ndcg@10"] == pytest.approx(1.0)
    assert finals[0]["metrics"]["test"]["ndcg@10"] < 0.5


def test_rerun_skips_everything_and_resumes_what_is_missing(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    run_suite(suite, echo=_quiet)
    root = suite.results_dir()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("seed*.json")}
    counts = run_suite(suite, echo=_quiet)
    assert counts["done"] == 0 and counts["skipped"] == 8
    assert {p: p.stat().st_mtime_ns for p in root.rglob("seed*.json")} == before
    # lose one search record and one final record: only those two run again
    victim_search = next(root.rglob("*.search.json"))
    victim_final = next(p for p in root.rglob("seed1.json") if "oracle" in str(p))
    victim_search.unlink()
    victim_final.unlink()
    lines = []
    counts = run_suite(suite, echo=lines.append)
    assert counts["done"] == 2 and counts["skipped"] == 6, lines
    assert victim_search.exists() and victim_final.exists()
    assert all(r["state"] == "done" for r in status(suite))


def test_a_fixed_run_that_a_grid_now_selects_is_run_again(toy, tmp_path):
    """Turning a fixed configuration into a grid whose choice is that same configuration:
    the record exists, but it says it was fixed. It is marked stale and run again, so the
    leaderboard sees the grid's choice (and the same numbers: same seed, same parameters)."""
    from mmbench import leaderboard as lbm

    fixed = '[[models]]\nname = "ORACLE"\nlabel = "oracle"\nparams = { target = "valid", noise = 0.0 }\n'
    suite = make_suite(tmp_path, fixed)
    run_suite(suite, echo=_quiet)
    path = next(p for p in suite.results_dir().rglob("seed0.json"))
    old = read_record(path)
    assert old["selection"]["method"] == "fixed"
    suite = make_suite(tmp_path, fixed.replace('params = { target = "valid", noise = 0.0 }',
                                               'params = { noise = 0.0 }\ngrid = { target = ["valid", "test"] }'))
    rows = {(r["stage"], r["state"]) for r in status(suite)}
    assert rows == {("search", "missing"), ("final", "waiting")}
    lines = []
    counts = run_suite(suite, echo=lines.append)
    assert counts["done"] == 4 and counts["failed"] == 0, lines  # 2 search + 2 final runs again
    new = read_record(path)
    assert new["selection"]["method"] == "grid" and new["selection"]["chosen"] == new["model"]["params_hash"]
    assert new["metrics"] == old["metrics"]
    assert all(r["state"] == "done" for r in status(suite))
    lb = lbm.build(suite, suite.results_dir())
    assert not lb.rejected and len(lb.rows) == 1
    write_record(path, old)  # the fixed-era record again: seen as stale, with the reason
    stale = [r for r in status(suite) if r["state"] == "stale"]
    assert len(stale) == 1 and stale[0]["seed"] == 0 and "'fixed'" in stale[0]["reason"]


def test_status_shows_failed_runs_with_their_reason(toy, tmp_path):
    suite = make_suite(tmp_path, '[[models]]\nname = "ORACLE"\nparams = { target = "nope" }\n')
    counts = run_suite(suite, echo=_quiet)
    assert counts["failed"] == 2
    rows = status(suite)
    assert {r["state"] for r in rows} == {"failed"} and all("nope" in r["reason"] for r in rows)


def test_only_runs_one_model(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    counts = run_suite(suite, only=["pop"], echo=_quiet)
    assert counts["done"] == 2
    assert all("pop" in f for f in _files(suite.results_dir()))
    with pytest.raises(ConfigError, match="'bpr' is not a model of the suite"):
        run_suite(suite, only=["bpr"], echo=_quiet)


def test_optuna_search_is_deterministic_and_resumable(toy, tmp_path):
    pytest.importorskip("optuna", reason="optuna is not installed (pip install 'mmbench[tune]')")
    models = '''[[models]]
name = "ORACLE"
label = "oracle"
params = { target = "valid" }
search = "optuna"
trials = 4
space = { noise = { low = 0.0, high = 1.0 } }
'''
    suite = make_suite(tmp_path, models)
    run_suite(suite, echo=_quiet)
    root = suite.results_dir()
    search = [read_record(p) for p in root.rglob("*.search.json")]
    noises = sorted(r["model"]["params"]["noise"] for r in search)
    assert len(search) == 4 and len(set(noises)) == 4
    finals = [read_record(p) for p in root.rglob("seed*.json") if ".search" not in p.name]
    best = max(search, key=lambda r: r["metrics"]["valid"]["ndcg@10"])
    assert {r["model"]["params_hash"] for r in finals} == {best["model"]["params_hash"]}
    assert finals[0]["selection"]["method"] == "optuna" and len(finals[0]["selection"]["candidates"]) == 4
    # a second run in a fresh directory asks the same parameters (seeded sampler)
    other = tmp_path / "again"
    run_suite(suite, results=other, echo=_quiet)
    assert sorted(read_record(p)["model"]["params"]["noise"] for p in other.rglob("*.search.json")) == noises
    # resume: drop the last two trials; the replayed study asks them again
    last = sorted(root.rglob("*.search.json"), key=lambda p: read_record(p)["model"]["params"]["noise"])
    for p in last[:2]:
        p.unlink()
    counts = run_suite(suite, echo=_quiet)
    assert counts["done"] == 2
    assert sorted(read_record(p)["model"]["params"]["noise"] for p in root.rglob("*.search.json")) == noises


@pytest.mark.parametrize("edit,match", [
    (lambda s: s + '\n[[models]]\nname = "pop"\n', r"two \[\[models\]\] entries are called 'pop'"),
    (lambda s: s.replace("grid = {", 'search = "random"\ngrid = {'), "search must be one of"),
    (lambda s: s.replace("grid = {", 'search = "optuna"\ngrid = {'), "an Optuna search needs a 'space'"),
    (lambda s: s.replace("grid = {", "trials = 3\ngrid = {"), "need search = \"optuna\""),
    (lambda s: s + '\n[leaderboard]\ntest = "z-test"\n', "leaderboard.test must be one of"),
    (lambda s: s.replace("[run]", "[run]\nsearch_seeds = []"), "search_seeds must list at least one seed"),
])
def test_malformed_suites_are_one_line_errors(tmp_path, edit, match):
    (tmp_path / "oracle.py").write_text(ORACLE)
    make_suite(tmp_path, GRID)
    p = tmp_path / "suite" / "suite.toml"
    p.write_text(edit(p.read_text()))
    with pytest.raises(ConfigError, match=match) as e:
        load_suite(p)
    assert "suite.toml" in str(e.value) and "\n" not in str(e.value)


def test_search_records_may_not_carry_test_metrics(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    run_suite(suite, only=["oracle"], echo=_quiet)
    p = next(suite.results_dir().rglob("*.search.json"))
    rec = read_record(p)
    rec["metrics"]["test"] = {"ndcg@10": 0.5}
    with pytest.raises(RecordError, match="must not carry test metrics"):
        write_record(p, rec)
    rec = read_record(p)
    rec["selection"] = {"stage": "search"}
    with pytest.raises(RecordError, match="must name its 'method'"):
        write_record(p, rec)


def test_unknown_backend_is_refused(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    with pytest.raises(ConfigError, match="unknown backend"):
        run_suite(suite, backend="dask", echo=_quiet)


def test_survey_lists_search_then_final(toy, tmp_path):
    suite = make_suite(tmp_path, GRID, seeds="[0, 1, 2]", extra="search_seeds = [1, 2]")
    rows = [r for r in survey(suite) if r.entry == "oracle"]
    assert [(r.stage, r.state) for r in rows] == [("search", "missing")] * 8 + [("final", "waiting")] * 3
    assert sorted({r.seed for r in rows if r.stage == "search"}) == [1, 2]
    np.testing.assert_equal(sorted({r.params_hash for r in rows if r.stage == "search"}).__len__(), 4)
