"""Jobs per suite entry: two entries of one model on two feature sets run as distinct jobs
whose records read exactly their entry's features and live in folders of their own, and
`suite status`, resume and the retirement of a failed run work entry by entry."""
import json
import re
import shutil

import pytest

from mmbench.errors import ConfigError
from mmbench.suite import load_suite, run_suite, status
from mmbench.suite.plan import check_models

from .fakes import TEXT_KEYS, TWO_TEXTS


@pytest.fixture
def suite_and_results(two_texts_run, tmp_path, monkeypatch):
    """The suite and a copy of its results, with the run's home and cards in the environment."""
    suite, root = two_texts_run
    monkeypatch.setenv("MMBENCH_HOME", str(root / "home"))
    monkeypatch.setenv("MMBENCH_CARDS", str(root / "cards"))
    shutil.copytree(root / "res", tmp_path / "res")
    return suite, tmp_path / "res"


def _by_features(res):
    """The records under ``res`` by the feature keys they were given (None: the suite's)."""
    out = {}
    for p in sorted(res.rglob("seed*.json")):
        rec = json.loads(p.read_text())
        given = rec["selection"].get("features")
        out.setdefault(None if given is None else tuple(given), []).append((p, rec))
    return out


def test_each_entry_reads_exactly_its_features_in_a_folder_of_its_own(suite_and_results):
    suite, res = suite_and_results
    groups = _by_features(res)
    assert set(groups) == {("text/a",), ("text/b",), None}
    fps = {k: v for g in groups.values() for _, rec in g for k, v in rec["features"].items()}
    ds = suite.prepare()
    assert fps == {k: ds.features.get(k).fingerprint for k in ("text/a", "text/b")}
    folders = {}
    for given, recs in groups.items():
        keys = TEXT_KEYS["knn (both)"] if given is None else list(given)
        stages = sorted(rec["selection"].get("stage", "final") for _, rec in recs)
        assert stages == ["final", "final", "search", "search"]  # 2 configurations on 1 search seed, 2 seeds
        for p, rec in recs:
            assert sorted(rec["features"]) == keys
            h8 = rec["model"]["params_hash"][:8]
            if given is None:  # an entry without its own features keeps today's path
                assert p.parent.name == h8
            else:
                assert re.fullmatch(re.escape(h8) + r"-f[0-9a-f]{6}", p.parent.name)
            folders.setdefault(given, set()).add(p.parent.name.partition("-")[2])
    assert all(len(tags) == 1 for tags in folders.values()) and len(set().union(*folders.values())) == 3
    # the same configuration (k = 50, the declared default) ran for every entry, in three folders
    centre = {given: next(rec for _, rec in recs if rec["model"]["params"]["k"] == 50)
              for given, recs in groups.items()}
    assert len({rec["model"]["params_hash"] for rec in centre.values()}) == 1
    assert centre[("text/a",)]["metrics"]["valid"] != centre[("text/b",)]["metrics"]["valid"]


def test_status_and_resume_go_entry_by_entry(suite_and_results):
    suite, res = suite_and_results
    rows = status(suite, res)
    assert len(rows) == 12 and {r["state"] for r in rows} == {"done"}
    assert {r["model"] for r in rows} == set(TEXT_KEYS)
    (p, _), = [(p, rec) for p, rec in _by_features(res)[("text/b",)]
               if rec["seed"] == 1 and rec["selection"]["stage"] == "final"]
    p.unlink()
    missing = [(r["model"], r["seed"], r["stage"]) for r in status(suite, res) if r["state"] != "done"]
    assert missing == [("knn (b)", 1, "final")]
    counts = run_suite(suite, results=res, workers=1, echo=lambda *_: None)
    assert (counts["done"], counts["skipped"], counts["failed"]) == (1, 11, 0)
    assert p.is_file() and json.loads(p.read_text())["features"].keys() == {"text/b"}


def test_a_failed_run_of_one_entry_is_retired_beside_its_own_records(suite_and_results):
    suite, res = suite_and_results
    (p, rec), = [(p, rec) for p, rec in _by_features(res)[("text/a",)]
                 if rec["seed"] == 0 and rec["selection"]["stage"] == "final"]
    p.write_text(json.dumps({**rec, "status": "failed", "error": "RuntimeError: on purpose", "metrics": {}}))
    failed = [(r["model"], r["seed"]) for r in status(suite, res) if r["state"] == "failed"]
    assert failed == [("knn (a)", 0)]
    assert run_suite(suite, results=res, workers=1, echo=lambda *_: None)["done"] == 1
    assert json.loads(p.with_name("seed0.failed-1.json").read_text())["error"] == "RuntimeError: on purpose"
    history = [(r["model"], r["reason"]) for r in status(suite, res) if r["state"] == "history"]
    assert history == [("knn (a)", "seed0.failed-1.json: failed earlier (RuntimeError: on purpose)")]


def test_an_entry_whose_features_lack_what_its_model_requires_is_refused_before_any_run(tmp_path):
    text = TWO_TEXTS.replace('features = ["text/a", "text/b"]', 'features = ["text/a", "text/b", "ids/z"]')
    (tmp_path / "suite.toml").write_text(text.replace('features = ["text/b"]', 'features = ["ids/z"]'))
    with pytest.raises(ConfigError, match=r"suite.toml: .*needs at least one content feature"):
        check_models(load_suite(tmp_path))
