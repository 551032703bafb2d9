"""A tiny cold-start suite with a robustness table, run end to end: the card's features are
shared with the suite's cold split, ID-only rows are marked on the /cold board, the
robustness view (README table, page table and plot, JSON) holds the records' values
averaged over seeds, and the suite's [robustness] table is checked and frozen."""
import json
import re

import numpy as np
import pytest

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import ConfigError
from mmbench.leaderboard import build, write
from mmbench.suite import load_suite, run_suite
from mmbench.suite.tuning import definition

from ..helpers import planted_rows, write_card, write_inter

SUITE = '''[suite]
name = "coldtoy"
version = 1
results = "records"
track = "fixed-budget"

[dataset]
name = "ct"
version = "1"
features = ["text/t", "audio/a"]

[split]
method = "cold_items"
cold_share = 0.25
cold_valid_share = 0.5
warm = "random_ratio"
ratios = [0.8, 0.1, 0.1]
seed = 3

[protocol]
metrics = ["ndcg@10/cold", "ndcg@10"]
main_metric = "ndcg@10/cold"

[run]
seeds = [0, 1]
device = "cpu"

[robustness]
drop = ["text", "audio"]
shares = [0.0, 0.5, 1.0]
seed = 2

[[models]]
name = "pop"

[[models]]
name = "late-fusion"
params = { epochs = 2, batch_size = 256 }
'''


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("coldtoy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMBENCH_HOME", str(root / "home"))
        mp.setenv("MMBENCH_CARDS", str(root / "cards"))
        (root / "cards").mkdir()
        write_inter(root / "d" / "ct.inter", planted_rows(n_users=40, n_items=32, per_user=10, seed=5))
        write_card(root / "cards", "ct", root / "d")
        base = prepare(find_card("ct"))  # the card's own split: the features live here
        rng = np.random.default_rng(0)
        for key, dim in (("text/t", 6), ("audio/a", 4)):
            base.features.put(key, rng.normal(size=(base.n_items, dim)), rng.random(base.n_items) > 0.1)
        (root / "suite").mkdir()
        (root / "suite" / "suite.toml").write_text(SUITE, encoding="utf-8")
        suite = load_suite(root / "suite")
        run_suite(suite, workers=1, echo=lambda *_: None)
        write(build(suite, suite.results_dir()), suite)
        yield suite, base, root


@pytest.fixture
def cold(board, monkeypatch):
    """The board's suite, the card's own preparation and the suite folder, with the test's
    home and cards in the environment again (each test gets its own otherwise)."""
    suite, base, root = board
    monkeypatch.setenv("MMBENCH_HOME", str(root / "home"))
    monkeypatch.setenv("MMBENCH_CARDS", str(root / "cards"))
    return suite, base, root / "suite"


def _records(folder, model):
    return [json.loads(p.read_text()) for p in sorted((folder / "records").rglob("seed*.json"))
            if f"/{model}/" in p.as_posix()]


def test_the_suite_split_reads_the_cards_features(cold):
    suite, base, _ = cold
    ds = suite.prepare()
    assert ds.fingerprint != base.fingerprint and ds.item_raw_ids() == base.item_raw_ids()
    for k in ("text/t", "audio/a"):
        assert ds.features.get(k).fingerprint == base.features.get(k).fingerprint
    assert ds.manifest["features"] == {k: base.features.get(k).fingerprint for k in ("audio/a", "text/t")}


def test_id_only_rows_are_marked_and_selected_without_the_group(cold):
    _, _, folder = cold
    readme = (folder / "v1" / "README.md").read_text()
    rows = [ln for ln in readme.splitlines() if ln.startswith("| 1 ") or ln.startswith("| 2 ")]
    assert any("| pop°" in ln for ln in rows) and not any("late-fusion°" in ln for ln in rows)
    assert "°: ID-only model (reads no item content)" in readme
    assert "°: ID-only" in (folder / "v1" / "index.html").read_text()
    lb = json.loads((folder / "v1" / "leaderboard.json").read_text())
    assert {r["registered_name"]: r["id_only"] for r in lb["rows"]} == {"pop": True, "late-fusion": False}
    assert {r["fit"]["valid_metric"] for r in _records(folder, "late-fusion")} == {"ndcg@10/cold"}
    pop = _records(folder, "pop")
    assert {r["fit"]["valid_metric"] for r in pop} == {"ndcg@10"}
    # Pop gives every cold item popularity 0: with more than 10 warm candidates none reaches the top 10
    assert {r["metrics"]["test"]["ndcg@10/cold"] for r in pop} == {0.0}


def test_robustness_view_averages_the_records(cold):
    _, _, folder = cold
    recs = _records(folder, "late-fusion")
    lb = json.loads((folder / "v1" / "leaderboard.json").read_text())
    row = next(r for r in lb["robustness"]["rows"] if r["model"] == "late-fusion")
    readme = (folder / "v1" / "README.md").read_text()
    html = (folder / "v1" / "index.html").read_text()
    for name in ("text", "audio"):
        vals = np.array([[s["metrics"]["ndcg@10/cold"]
                          for s in next(x for x in r["robustness"]["results"] if x["key"] == name)["shares"]]
                         for r in recs])
        means, stds = vals.mean(0), vals.std(0, ddof=1)
        assert [c["mean"] for c in row["curves"][name]] == pytest.approx(means, abs=1e-8)
        line = next(ln for ln in readme.splitlines() if ln.startswith(f"| late-fusion | {name} "))
        cells = re.findall(r"(\d\.\d{4}) ± (\d\.\d{4})", line)
        assert [float(m) for m, _ in cells] == pytest.approx(means, abs=5e-5)
        assert [float(s) for _, s in cells] == pytest.approx(stds, abs=5e-5)
        assert line.rstrip(" |").endswith("dropped (missing = 'drop')")  # late fusion's default
        assert f"ndcg@10/cold against the share of items without {name}" in html
    assert html.count("<polyline") == 2  # one line per plot: pop has no curve
    assert "pop: no curve (Pop reads no item content)" in readme
    assert lb["robustness"]["shares"] == [0.0, 0.5, 1.0] and lb["robustness"]["metric"] == "ndcg@10/cold"


def test_robustness_table_is_checked_and_frozen(cold, tmp_path):
    suite, _, folder = cold
    assert definition(suite)["robustness"] == {"keys": ["text", "audio"], "shares": [0.0, 0.5, 1.0], "seed": 2}
    for edit, match in ((lambda s: s.replace('drop = ["text", "audio"]', 'drop = ["image"]'), "cannot drop 'image'"),
                        (lambda s: s.replace("shares = [0.0, 0.5, 1.0]", "shares = [0.0, 2.0]"), "shares must be"),
                        (lambda s: s.replace('drop = ["text", "audio"]\n', ""), "robustness.drop")):
        (tmp_path / "suite.toml").write_text(edit(SUITE), encoding="utf-8")
        with pytest.raises(ConfigError, match=match) as e:
            load_suite(tmp_path / "suite.toml")
        assert "suite.toml" in str(e.value)


def test_a_final_record_without_the_robustness_evaluation_is_stale(cold, tmp_path):
    import shutil

    from mmbench.records import read_per_user, read_record, write_record
    from mmbench.suite import status

    _, _, folder = cold
    copy = tmp_path / "suite"
    shutil.copytree(folder, copy)
    path = next(p for p in sorted((copy / "records").rglob("seed1.json")) if "/late-fusion/" in p.as_posix())
    rec = read_record(path)
    del rec["robustness"]  # as a record made before the suite asked for it
    write_record(path, rec, read_per_user(path))
    rows = [r for r in status(load_suite(copy)) if r["state"] != "history"]
    stale = [r for r in rows if r["state"] == "stale"]
    assert [(r["model"], r["seed"], r["stage"]) for r in stale] == [("late-fusion", 1, "final")]
    assert "lacks the suite's [robustness] evaluation" in stale[0]["reason"]
    assert all(r["state"] == "done" for r in rows if r not in stale)


def test_every_row_of_a_board_of_up_to_40_models_has_a_colour_of_its_own():
    from types import SimpleNamespace

    from mmbench.leaderboard.html import colors

    rows = [SimpleNamespace(key=f"model {i:02d}") for i in range(40)]
    assert len(set(colors(SimpleNamespace(rows=rows)).values())) == 40
