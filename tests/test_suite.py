"""Suites: validation-only model selection over the tuning budget (grid and Optuna),
resumable runs, status."""
import json

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import ConfigError, RecordError
from mmbench.records import read_record, record_stage, write_record
from mmbench.suite import load_suite, run_suite, status, survey

from .helpers import planted_rows, write_card, write_inter
from .suite.fakes import oracle_installed


@pytest.fixture
def oracle(tmp_path, monkeypatch):
    """The oracle test doubles registered as installed models (see tests/suite/fakes.py)."""
    with oracle_installed(tmp_path / "site", monkeypatch):
        yield


@pytest.fixture
def toy(tmp_path, cards_dir, monkeypatch, oracle):
    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=40, n_items=30, per_user=10, seed=2))
    write_card(cards_dir, "toy", tmp_path / "d")
    ds = prepare(find_card("toy"))
    monkeypatch.setenv("ORACLE_DATASET", str(ds.path))
    return ds


TUNING = "[tuning]\nconfigurations = 4"


def make_suite(tmp_path, models: str, *, seeds="[0, 1]", extra="", protocol=None, name="t-suite", tuning=TUNING,
               head=""):
    d = tmp_path / "suite"
    d.mkdir(exist_ok=True)
    protocol = protocol or 'metrics = ["ndcg@10", "recall@10"]\nmain_metric = "ndcg@10"'
    (d / "suite.toml").write_text(f'''[suite]
name = "{name}"
version = 1
description = "test suite"
results = "records"
{head}
[dataset]
name = "toy"
version = "1"

[protocol]
{protocol}

[run]
seeds = {seeds}
device = "cpu"
{extra}
{tuning}

{models}
''', encoding="utf-8")
    return load_suite(d)


# the oracle declares target in {valid, test} x noise in {0.0, 0.7}: a budget of 4 is its whole grid
GRID = '''[[models]]
name = "pop"

[[models]]
name = "oracle"
'''


def run(suite, **kw):
    """run_suite in this process (workers see neither the fake distribution's patches)."""
    return run_suite(suite, workers=1, echo=kw.pop("echo", _quiet), **kw)


def _quiet(*_):
    pass


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("seed*.json"))


def test_grid_is_chosen_on_validation_and_test_is_run_once(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    assert [r["state"] for r in status(suite)].count("waiting") == 2  # finals wait for the search
    counts = run(suite)
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
    assert chosen == {"target": "valid", "noise": 0.0, "explode": False}
    sel = finals[0]["selection"]
    assert sel["chosen"] == finals[0]["model"]["params_hash"] and sel["on"] == "valid" and sel["seeds"] == [0]
    vals = {json.dumps(c["params"], sort_keys=True): c["valid"] for c in sel["candidates"]}
    assert len(vals) == 4 and vals['{"noise": 0.0, "target": "valid"}'] == pytest.approx(1.0)
    assert max(vals.values()) == vals['{"noise": 0.0, "target": "valid"}']
    assert finals[0]["metrics"]["valid"]["ndcg@10"] == pytest.approx(1.0)
    assert finals[0]["metrics"]["test"]["ndcg@10"] < 0.5


def test_rerun_skips_everything_and_resumes_what_is_missing(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    run(suite)
    root = suite.results_dir()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("seed*.json")}
    counts = run(suite)
    assert counts["done"] == 0 and counts["skipped"] == 8
    assert {p: p.stat().st_mtime_ns for p in root.rglob("seed*.json")} == before
    # lose one search record and one final record: only those two run again
    victim_search = next(root.rglob("*.search.json"))
    victim_final = next(p for p in root.rglob("seed1.json") if "oracle" in str(p))
    victim_search.unlink()
    victim_final.unlink()
    lines = []
    counts = run(suite, echo=lines.append)
    assert counts["done"] == 2 and counts["skipped"] == 6, lines
    assert victim_search.exists() and victim_final.exists()
    assert all(r["state"] == "done" for r in status(suite))


def test_a_fixed_run_that_a_grid_now_selects_is_run_again(toy, tmp_path):
    """Giving a model a tuning budget whose choice is the configuration it ran before: the
    record exists, but it says it was fixed. It is marked stale and run again, so the
    leaderboard sees the search's choice (and the same numbers: same seed, same parameters)."""
    from mmbench import leaderboard as lbm

    suite = make_suite(tmp_path, GRID, tuning="")  # no budget: every model runs its defaults
    run(suite, only=["oracle"])
    path = next(p for p in suite.results_dir().rglob("seed0.json") if "oracle" in str(p))
    old = read_record(path)
    assert old["selection"]["method"] == "fixed" and old["model"]["params"]["target"] == "valid"
    suite = make_suite(tmp_path, GRID)
    rows = {(r["stage"], r["state"]) for r in status(suite) if r["model"] == "oracle"}
    assert rows == {("search", "missing"), ("final", "waiting")}
    lines = []
    counts = run(suite, echo=lines.append, only=["oracle"])
    assert counts["done"] == 6 and counts["failed"] == 0, lines  # 4 search + 2 final runs again
    new = read_record(path)
    assert new["selection"]["method"] == "grid" and new["selection"]["chosen"] == new["model"]["params_hash"]
    assert new["metrics"] == old["metrics"]
    assert all(r["state"] == "done" for r in status(suite) if r["model"] == "oracle")
    lb = lbm.build(suite, suite.results_dir())
    assert not lb.rejected and len(lb.rows) == 1
    write_record(path, old)  # the fixed-era record again: seen as stale, with the reason
    stale = [r for r in status(suite) if r["state"] == "stale"]
    assert len(stale) == 1 and stale[0]["seed"] == 0 and "'fixed'" in stale[0]["reason"]


def test_status_shows_failed_runs_with_their_reason(toy, tmp_path):
    suite = make_suite(tmp_path, '[[models]]\nname = "oracle"\nparams = { explode = true }\n', tuning="")
    counts = run(suite)
    assert counts["failed"] == 2
    rows = status(suite)
    assert {r["state"] for r in rows} == {"failed"} and all("exploded on purpose" in r["reason"] for r in rows)


def test_only_runs_one_model(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    counts = run(suite, only=["pop"])
    assert counts["done"] == 2
    assert all("pop" in f for f in _files(suite.results_dir()))
    with pytest.raises(ConfigError, match="'bpr' is not a model of the suite"):
        run(suite, only=["bpr"])


def test_optuna_search_is_deterministic_and_resumable(toy, tmp_path):
    pytest.importorskip("optuna", reason="optuna is not installed (pip install 'mmbench[tune]')")
    suite = make_suite(tmp_path, GRID, tuning='[tuning]\nconfigurations = 3\nmethod = "optuna"\nseed = 5')
    run(suite, only=["oracle"])
    root = suite.results_dir()
    search = [read_record(p) for p in root.rglob("*.search.json")]
    asked = sorted(json.dumps(r["model"]["params"], sort_keys=True) for r in search)
    assert 1 <= len(search) <= 3  # TPE may ask a configuration again: it is run once
    finals = [read_record(p) for p in root.rglob("seed*.json") if ".search" not in p.name]
    best = min(search, key=lambda r: (-r["metrics"]["valid"]["ndcg@10"], r["model"]["params_hash"]))
    assert {r["model"]["params_hash"] for r in finals} == {best["model"]["params_hash"]}
    sel = finals[0]["selection"]
    assert sel["method"] == "optuna" and len(sel["candidates"]) == len(search)
    # the declared defaults are the first trial; the valid oracle without noise wins on validation
    assert finals[0]["model"]["params"]["target"] == "valid" and finals[0]["model"]["params"]["noise"] == 0.0
    # a second run in a fresh directory asks the same parameters (seeded sampler)
    other = tmp_path / "again"
    run(suite, results=other, only=["oracle"])
    assert sorted(json.dumps(read_record(p)["model"]["params"], sort_keys=True)
                  for p in other.rglob("*.search.json")) == asked
    # resume: drop a trial's record; the replayed study asks it again
    next(root.rglob("*.search.json")).unlink()
    counts = run(suite, only=["oracle"])
    assert counts["done"] == 1
    assert sorted(json.dumps(read_record(p)["model"]["params"], sort_keys=True)
                  for p in root.rglob("*.search.json")) == asked


@pytest.mark.parametrize("edit,match", [
    (lambda s: s + '\n[[models]]\nname = "pop"\n', r"two \[\[models\]\] entries are called 'pop'"),
    (lambda s: s.replace('name = "oracle"', 'name = "oracle"\ngrid = { noise = [0.1] }'), "has its own 'grid'"),
    (lambda s: s.replace('name = "oracle"', 'name = "oracle"\nsearch = "optuna"'), "has its own 'search'"),
    (lambda s: s.replace('name = "oracle"', 'name = "oracle"\ntrials = 3'), "has its own 'trials'"),
    (lambda s: s.replace('name = "oracle"', 'name = "oracle"\nparams = { noise = 0.2 }'),
     "fixes noise=0.2, a parameter the model declares a search space for"),
    (lambda s: s.replace('name = "oracle"', 'name = "oracle.py:Oracle"'), "a suite names registered models only"),
    (lambda s: s.replace('name = "oracle"', 'name = "../oracle"'), "model '../oracle' is not a valid name"),
    (lambda s: s.replace('name = "t-suite"', 'name = "../up"'), "suite name '../up' is not a valid name"),
    (lambda s: s.replace('results = "records"', 'results = "../../elsewhere"'), "suite.results '../../elsewhere' points"),
    (lambda s: s.replace("configurations = 4", "configurations = 0"), "tuning.configurations must be >= 1"),
    (lambda s: s.replace("configurations = 4", 'configurations = 4\nmethod = "random"'), "tuning.method one of"),
    (lambda s: s.replace("version = 1", "version = 1\nrules = 1"), r"a \[tuning\] budget needs rules 2"),
    (lambda s: s.replace("version = 1", "version = 1\nrules = 3"), "suite.rules must be between 1 and 2"),
    (lambda s: s.replace("version = 1", 'version = 1\ntrack = "fast"'), "suite.track must be 'fixed-budget'"),
    (lambda s: s + '\n[leaderboard]\ntest = "z-test"\n', "leaderboard.test must be one of"),
    (lambda s: s.replace("[run]", "[run]\nsearch_seeds = []"), "search_seeds must list at least one seed"),
])
def test_malformed_suites_are_one_line_errors(oracle, tmp_path, edit, match):
    make_suite(tmp_path, GRID)
    p = tmp_path / "suite" / "suite.toml"
    p.write_text(edit(p.read_text()))
    with pytest.raises(ConfigError, match=match) as e:
        load_suite(p)
    assert "suite.toml" in str(e.value) and "\n" not in str(e.value)


def test_rules_1_keeps_per_model_grids(oracle, tmp_path):
    """A suite built before rules 2 still loads as it was: its per-model grid is its search."""
    suite = make_suite(tmp_path, GRID.replace('name = "oracle"', 'name = "oracle"\ngrid = { noise = [0.0, 0.7] }'),
                       tuning="", head="rules = 1")
    assert suite.rules == 1 and suite.entry("oracle").method == "grid"
    assert [c["noise"] for c in suite.entry("oracle").configurations()] == [0.0, 0.7]


def test_search_records_may_not_carry_test_metrics(toy, tmp_path):
    suite = make_suite(tmp_path, GRID)
    run(suite, only=["oracle"])
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
        run(suite, backend="dask")


def test_survey_lists_search_then_final(toy, tmp_path):
    suite = make_suite(tmp_path, GRID, seeds="[0, 1, 2]", extra="search_seeds = [1, 2]")
    rows = [r for r in survey(suite) if r.entry == "oracle"]
    assert [(r.stage, r.state) for r in rows] == [("search", "missing")] * 8 + [("final", "waiting")] * 3
    assert sorted({r.seed for r in rows if r.stage == "search"}) == [1, 2]
    np.testing.assert_equal(sorted({r.params_hash for r in rows if r.stage == "search"}).__len__(), 4)


def test_the_chosen_configurations_seed_run_reuses_its_search_training_bit_for_bit(toy, tmp_path):
    """The final run of the chosen configuration on a search seed trains exactly as its search run
    did: it starts from the search run's last checkpoint instead of training again. Its metrics,
    history and per-user values equal a fresh run's; the other seeds train; no checkpoint is left."""
    from mmbench.protocol import Protocol
    from mmbench.records import read_per_user
    from mmbench.runner import run_one

    suite = make_suite(tmp_path, '[[models]]\nname = "bpr"\nparams = { epochs = 6, patience = 2, batch_size = 64 }\n',
                       tuning="[tuning]\nconfigurations = 2")
    assert run(suite)["failed"] == 0
    root = suite.results_dir()
    finals = {p.name: p for p in root.rglob("seed*.json") if ".search" not in p.name}
    rec0, rec1 = read_record(finals["seed0.json"]), read_record(finals["seed1.json"])
    assert rec0["fit"]["reused"] == "seed0.search.json" and "reused" not in rec1["fit"]
    search = read_record(finals["seed0.json"].with_name("seed0.search.json"))
    assert rec0["fit"]["history"] == search["fit"]["history"]
    assert not list(root.rglob("*.ckpt"))
    fresh, path, _ = run_one("bpr", toy, params=rec0["model"]["params"], seed=0, protocol=suite.protocol,
                             results=tmp_path / "fresh", suite="fresh", selection=rec0["selection"])
    assert "reused" not in fresh["fit"]
    assert fresh["metrics"] == rec0["metrics"] and fresh["fit"]["history"] == rec0["fit"]["history"]
    a, b = read_per_user(path), read_per_user(finals["seed0.json"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # the board's training time of the reused seed is its search run's, not the resumed run's
    from mmbench import leaderboard as lbm

    row = lbm.build(suite, root).rows[0]
    assert row.fit_s == pytest.approx((search["timing"]["fit_s"] + rec1["timing"]["fit_s"]) / 2)


def _committed_suite_files():
    from .conftest import ROOT

    return sorted(f"{p.parent.name}/{p.name}" for p in (ROOT / "leaderboards").glob("*/suite*.toml"))


@pytest.mark.parametrize("suite_file", _committed_suite_files())
def test_every_committed_suite_loads_and_every_configuration_is_allowed(suite_file):
    """Each committed suite (the demo's ml100k-quick included) is valid under its rules, and every
    configuration it may run lies inside its models' declared parameters, before anything runs."""
    from mmbench.suite.plan import check_models

    from .conftest import ROOT

    suite = load_suite(ROOT / "leaderboards" / suite_file)
    check_models(suite)
    assert suite.models and suite.seeds
