"""Which records a board uses when a suite shows one model on two feature sets: each
entry's row holds exactly the records given its features, with the records' means; a
record whose feature keys match no entry is rejected with its reason, and a final record's
search claims are checked against the search records of its own feature keys."""
import json
import shutil

import numpy as np
import pytest

from mmbench.leaderboard import build
from mmbench.suite import load_suite

from ..suite.fakes import TEXT_KEYS


@pytest.fixture
def copy(two_texts_run, tmp_path, monkeypatch):
    """The suite folder and a copy of its results, with the run's home and cards set."""
    _, root = two_texts_run
    monkeypatch.setenv("MMBENCH_HOME", str(root / "home"))
    monkeypatch.setenv("MMBENCH_CARDS", str(root / "cards"))
    shutil.copytree(root / "suite", tmp_path / "suite")
    shutil.copytree(root / "res", tmp_path / "res")
    return tmp_path / "suite", tmp_path / "res"


def test_two_feature_sets_of_one_model_are_two_rows_of_their_own_records(copy):
    folder, res = copy
    lb = build(load_suite(folder), res)
    assert lb.rejected == [] and sorted(r.key for r in lb.rows) == sorted(TEXT_KEYS)
    seen = set()
    for row in lb.rows:
        recs = [json.loads((res / rel).read_text()) for rel in row.records]
        assert [r["seed"] for r in recs] == [0, 1] and not seen & set(row.records)
        seen |= set(row.records)
        for r in recs:
            assert sorted(r["features"]) == TEXT_KEYS[row.key]
            assert r["model"]["params_hash"] == row.params_hash and r["selection"]["stage"] == "final"
        for m in ("ndcg@10", "recall@10"):
            assert row.test[m].mean == pytest.approx(np.mean([r["metrics"]["test"][m] for r in recs]), abs=1e-12)
    means = {r.key: r.test["ndcg@10"].mean for r in lb.rows}
    assert means["knn (a)"] != means["knn (b)"]


def test_records_of_a_feature_set_no_entry_names_are_rejected(copy):
    folder, res = copy
    text = (folder / "suite.toml").read_text()
    (folder / "suite.toml").write_text(text.replace('label = "knn (a)"\nfeatures = ["text/a"]',
                                                    'label = "knn (a)"\nfeatures = ["text/a", "text/b"]'))
    lb = build(load_suite(folder), res)
    assert sorted(r.key for r in lb.rows) == ["knn (b)", "knn (both)"]
    assert len(lb.rejected) == 4  # knn (a)'s two search and two final records
    assert all("and features ['text/a'] is not in the suite" in why for _, why in lb.rejected)


def test_a_final_record_is_backed_by_the_search_records_of_its_own_features(copy):
    folder, res = copy
    for p in res.rglob("seed*.search.json"):
        if json.loads(p.read_text())["selection"].get("features") == ["text/b"]:
            p.unlink()
    lb = build(load_suite(folder), res)
    assert sorted(r.key for r in lb.rows) == ["knn (a)", "knn (both)"]  # the same configurations ran for (a)
    assert len(lb.rejected) == 2
    assert all("whose search record is missing" in why for _, why in lb.rejected)


def test_one_model_listed_twice_with_a_pinned_parameter_gets_each_record_in_its_own_row(tmp_path):
    """Late fusion by its defaults (missing = "drop") and again with missing = "impute": a
    record with the default belongs to the first entry only, although the first entry's
    configurations leave ``missing`` to the model (and so match either record)."""
    from mmbench.leaderboard.select import _entry_for
    from mmbench.runner import ModelSpec

    from ..test_suite import make_suite

    suite = make_suite(tmp_path, '''[[models]]
name = "late-fusion"
label = "Late fusion"
params = { epochs = 3 }

[[models]]
name = "late-fusion"
label = "Late fusion (imputed)"
params = { epochs = 3, missing = "impute" }

[[models]]
name = "late-fusion"
label = "Late fusion (learned token)"
params = { epochs = 3, missing = "embed" }
''', tuning="")
    spec = ModelSpec.resolve("late-fusion")
    for missing, label in (("drop", "Late fusion"), ("impute", "Late fusion (imputed)"),
                           ("embed", "Late fusion (learned token)")):
        rec = {"model": {"name": "late-fusion", "params": spec.params({"epochs": 3, "missing": missing})},
               "selection": {}}
        assert _entry_for(suite, rec).key == label
    other = {"model": {"name": "late-fusion", "params": spec.params({"epochs": 4})}, "selection": {}}
    assert _entry_for(suite, other) is None
