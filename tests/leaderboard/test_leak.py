"""A feature its card declares as derived from interactions beyond train is flagged in every
record that reads it and marked, with a legend line, on a board under rules 2; a record that
does not say (made before provenance was recorded) is not believed there."""
import csv
import io
import json

import numpy as np
import pytest

from mmbench import leaderboard as lbm
from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import RecordError
from mmbench.records import read_record, validate_record, write_record
from mmbench.suite import load_suite, run_suite

from ..data.formats.common import card
from ..helpers import planted_rows

SUITE = '''[suite]
name = "leak"
version = 1
track = "fixed-budget"

[dataset]
name = "leaky"
version = "1"

[protocol]
metrics = ["ndcg@10", "recall@10"]
main_metric = "ndcg@10"

[run]
seeds = [0]
device = "cpu"

[tuning]
configurations = 1

[[models]]
name = "pop"

[[models]]
name = "itemknn-cbf"
label = "knn-tags"

[[models]]
name = "mf"
label = "untouched"
params = { embedding_dim = 2, epochs = 1, patience = 5, batch_size = 128 }
'''


@pytest.fixture
def leaky(tmp_path, cards_dir):
    """An MMRec dataset whose text feature is declared as made from all interactions."""
    d = tmp_path / "data"
    d.mkdir()
    rows = planted_rows(n_users=30, n_items=20, per_user=8, seed=3)
    lines, rng = [], np.random.default_rng(0)
    for u in range(30):
        mine = [(int(i[1:]), r) for uu, i, r, _ in rows if uu == f"u{u}"]
        for k, (i, _) in enumerate(mine):  # the last two of each user: test, then valid
            lines.append(f"{u}\t{i}\t1\t{2 if k == len(mine) - 1 else 1 if k == len(mine) - 2 else 0}\n")
    (d / "leaky.inter").write_text("userID\titemID\trating\tx_label\n" + "".join(lines))
    np.save(d / "tags.npy", rng.normal(size=(20, 4)))
    card(cards_dir, "leaky", "mmrec", d, '''[files]
interactions = "leaky.inter"
[columns]
user = "userID"
item = "itemID"
rating = "rating"
label = "x_label"
[features]
"text/tags" = "tags.npy"
[split]
method = "preset"
column = "x_label"
[provenance]
"text/tags" = { source = "tags users gave", behaviour = true, interactions = "all" }
''')
    return prepare(find_card("leaky"))


def test_a_leaking_feature_is_flagged_in_records_and_marked_on_the_board(leaky, tmp_path):
    assert leaky.features.get("text/tags").meta["provenance"]["leaks"] is True
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "suite.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "suite")
    results = tmp_path / "results"
    run_suite(suite, results=results, workers=1, echo=lambda *_: None)
    recs = {read_record(p)["model"]["name"]: read_record(p) for p in results.rglob("seed0.json")}
    assert recs["itemknn-cbf"]["features"].keys() == {"text/tags"}
    assert recs["itemknn-cbf"]["features_leak"] == ["text/tags"]
    assert recs["pop"]["features_leak"] == [] and recs["mf"]["features_leak"] == []

    lb = lbm.build(suite, results)
    assert lb.rejected == [] and {r.key: r.leaks for r in lb.rows} == {
        "pop": [], "knn-tags": ["text/tags"], "untouched": []}
    out = tmp_path / "board"
    lbm.write(lb, suite, out)
    readme = (out / "README.md").read_text()
    marked = [ln for ln in readme.splitlines() if ln.startswith("|") and "§" in ln]
    assert len(marked) == 1 and "knn-tags §" in marked[0]
    assert "§ after a model: it reads a feature derived from interactions beyond the training split" in readme
    assert "(text/tags)" in readme
    table = {r["model"]: r for r in csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text()))}
    assert table["knn-tags"]["features_leak"] == "text/tags" and table["pop"]["features_leak"] == ""
    rows = {r["model"]: r for r in json.loads((out / "leaderboard.json").read_text())["rows"]}
    assert rows["knn-tags"]["features_leak"] == ["text/tags"] and rows["untouched"]["features_leak"] == []
    assert "reads text/tags" in (out / "index.html").read_text()

    # a final record that does not say is not believed under rules 2
    path = next(p for p in results.rglob("seed0.json") if "/pop/" in p.as_posix())
    rec = read_record(path)
    del rec["features_leak"]
    path.write_text(json.dumps(rec))
    reasons = dict(lbm.build(suite, results).rejected)
    assert reasons == {path.relative_to(results).as_posix():
                       "made before feature provenance was recorded (no features_leak): rerun it"}


def test_a_board_without_leaking_features_has_no_mark(leaky, tmp_path):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "suite.toml").write_text(SUITE.split("[[models]]\nname = \"itemknn-cbf\"")[0])
    suite = load_suite(tmp_path / "suite")
    run_suite(suite, results=tmp_path / "results", workers=1, echo=lambda *_: None)
    lb = lbm.build(suite, tmp_path / "results")
    lbm.write(lb, suite, tmp_path / "board")
    assert [r.key for r in lb.rows] == ["pop"] and "§" not in (tmp_path / "board" / "README.md").read_text()


def test_features_leak_must_name_the_records_features(tmp_path):
    rec = {"schema": "mmbench.run/1", "status": "ok", "suite": "s", "dataset": {"name": "d", "fingerprint": "f"},
           "features": {"text/a": "fp"}, "features_leak": ["text/b"],
           "model": {"name": "m", "params": {}, "params_hash": "h", "distribution": "x", "version": "1"},
           "protocol": {}, "protocol_hash": "p", "seed": 0, "selection": {"method": "fixed", "on": "valid"},
           "metrics": {"valid": {"ndcg@10": 0.1}, "test": {"ndcg@10": 0.1}}, "timing": {}, "env": {},
           "created": "now"}
    with pytest.raises(RecordError, match="features_leak names 'text/b', which is not among the record's features"):
        validate_record(rec, "r.json")
    rec["features_leak"] = "text/a"
    with pytest.raises(RecordError, match="field 'features_leak' must be a list of feature keys"):
        write_record(tmp_path / "r.json", rec)
    rec["features_leak"] = ["text/a"]
    assert validate_record(rec, "r.json") is rec
    del rec["features_leak"]  # records made before provenance was recorded stay valid
    assert validate_record(rec, "r.json") is rec
