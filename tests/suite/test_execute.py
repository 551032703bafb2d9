"""Running jobs: a failed record never blocks its rerun (it is kept beside as history and
shown by `suite status`), a truncated record is an error, names never leave --results."""
import json

import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import ConfigError
from mmbench.records import iter_records, read_record
from mmbench.runner import run_one
from mmbench.suite import load_suite, run_suite, status

from ..conftest import run_cli
from ..helpers import planted_rows, write_card, write_inter
from .fakes import oracle_installed

SUITE = '''[suite]
name = "exec"
version = 1

[dataset]
name = "toy"
version = "1"

[protocol]
metrics = ["ndcg@10"]
main_metric = "ndcg@10"

[run]
seeds = [0]
device = "cpu"

[[models]]
name = "oracle"
'''


@pytest.fixture
def toy(tmp_path, cards_dir, monkeypatch):
    with oracle_installed(tmp_path / "site", monkeypatch):
        write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=30, n_items=20, per_user=8, seed=1))
        write_card(cards_dir, "toy", tmp_path / "d")
        yield prepare(find_card("toy"))


def test_a_failed_run_is_kept_as_history_and_its_rerun_replaces_it(toy, tmp_path, monkeypatch):
    res = tmp_path / "res"
    monkeypatch.delenv("ORACLE_DATASET", raising=False)  # the run fails: the model cannot find its data
    with pytest.raises(Exception, match="ORACLE_DATASET"):
        run_one("oracle", toy, results=res)
    (path,) = [p for p, _ in iter_records(res)]
    assert read_record(path)["status"] == "failed"
    monkeypatch.setenv("ORACLE_DATASET", str(toy.path))  # the corrected command
    rec, again, state = run_one("oracle", toy, results=res)
    assert (state, again, rec["status"]) == ("done", path, "ok") and "test" in rec["metrics"]
    history = path.with_name("seed0.failed-1.json")
    assert json.loads(history.read_text())["status"] == "failed"
    assert [p for p, _ in iter_records(res)] == [path]  # history is never read as a record
    assert run_one("oracle", toy, results=res)[2] == "skipped"


def test_suite_status_shows_the_rerun_and_the_failed_history(toy, tmp_path, monkeypatch):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "suite.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "s")
    res = tmp_path / "res"
    monkeypatch.delenv("ORACLE_DATASET", raising=False)
    assert run_suite(suite, results=res, workers=1, echo=lambda *_: None)["failed"] == 1
    monkeypatch.setenv("ORACLE_DATASET", str(toy.path))
    counts = run_suite(suite, results=res, workers=1, echo=lambda *_: None)  # the failed job runs again
    assert counts["done"] == 1 and counts["failed"] == 0
    rows = status(suite, res)
    assert [(r["state"], r["seed"]) for r in rows] == [("done", 0), ("history", 0)]
    assert "seed0.failed-1.json" in rows[1]["reason"] and "ORACLE_DATASET" in rows[1]["reason"]
    out = run_cli("suite", "status", tmp_path / "s", "--results", res)
    assert "done=1 history=1" in out.stdout and "history  oracle" in out.stdout


def test_a_truncated_record_is_an_error_not_done(toy, tmp_path, monkeypatch):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "suite.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "s")
    res = tmp_path / "res"
    monkeypatch.setenv("ORACLE_DATASET", str(toy.path))
    run_suite(suite, results=res, workers=1, echo=lambda *_: None)
    (path,) = [p for p, _ in iter_records(res)]
    path.write_text(path.read_text()[:50])
    lines = []
    counts = run_suite(suite, results=res, workers=1, echo=lines.append)
    assert counts["invalid"] == 1 and counts["done"] == 0 and counts["skipped"] == 0
    assert len(lines) == 1 and "invalid JSON" in lines[0] and str(path) in lines[0] and "remove it" in lines[0]
    assert [r["state"] for r in status(suite, res)] == ["invalid"]


def test_names_never_leave_the_results_folder(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("ORACLE_DATASET", str(toy.path))
    with pytest.raises(ConfigError, match=r"suite '\.\./escape' is not a valid name"):
        run_one("oracle", toy, results=tmp_path / "res", suite="../escape")
    with pytest.raises(ConfigError, match="is not a valid name"):
        run_one("oracle", toy, results=tmp_path / "res", suite=str(tmp_path / "abs"))
    assert not (tmp_path / "escape").exists() and not (tmp_path / "abs").exists()
    out = run_cli("run", "-m", "pop", "-d", "toy", "--suite", "../up", "--results", tmp_path / "res", check=False)
    assert out.returncode == 2 and "--suite '../up' is not a valid name" in out.stderr
    assert not (tmp_path / "up").exists()


def test_a_model_file_runs_only_from_the_command_line_with_a_warning(toy, tmp_path):
    model = tmp_path / "mine.py"
    model.write_text("from mmbench_baselines.pop import Pop as Mine\n")
    out = run_cli("run", "-m", f"{model}:Mine", "-d", "toy", "--results", tmp_path / "res")
    assert f"warning: {model} is a file, not an installed plugin: running its local code" in out.stderr
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "suite.toml").write_text(SUITE.replace('name = "oracle"', f'name = "{model.as_posix()}:Mine"'))
    out = run_cli("suite", "status", tmp_path / "s", check=False)
    assert out.returncode == 2 and "a suite names registered models only" in out.stderr
