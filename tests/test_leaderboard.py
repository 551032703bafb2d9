"""Leaderboards from records alone: numbers, statistics, rejections, versions, bytes, views."""
import csv
import io
import json
import re
import shutil

import numpy as np
import pytest

from mmbench import leaderboard as lbm
from mmbench.errors import ConfigError
from mmbench.records import read_record, write_record
from mmbench.suite import load_suite

from .conftest import run_cli
from .helpers import planted_rows, write_card, write_inter
from .suite.fakes import oracle_installed
from .test_suite import GRID, make_suite, run

PROTOCOL = 'metrics = ["ndcg@10", "recall@10", "recall@10/tail"]\nmain_metric = "ndcg@10"'
MODELS = GRID + '''
[[models]]
name = "oracle-test"
label = "oracle-test-noisy"
'''


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One suite run on a tiny planted dataset (pop, the oracle searched over its declared
    space, a noisy test oracle; 3 seeds); tests copy its folder and work on the copy. The
    oracles stay registered for the module's tests."""
    root = tmp_path_factory.mktemp("board")
    with pytest.MonkeyPatch.context() as mp, oracle_installed(root / "site", mp):
        mp.setenv("MMBENCH_HOME", str(root / "home"))
        cards = root / "cards"
        cards.mkdir()
        mp.setenv("MMBENCH_CARDS", str(cards))
        write_inter(root / "d" / "toy.inter", planted_rows(n_users=40, n_items=30, per_user=10, seed=2))
        write_card(cards, "toy", root / "d")
        from mmbench.data.cards import find_card
        from mmbench.data.prepare import prepare

        ds = prepare(find_card("toy"))
        mp.setenv("ORACLE_DATASET", str(ds.path))
        suite = make_suite(root, MODELS, seeds="[0, 1, 2]", protocol=PROTOCOL)
        run(suite)
        yield root


@pytest.fixture
def board(built, tmp_path):
    shutil.copytree(built / "suite", tmp_path / "suite")
    return load_suite(tmp_path / "suite")


def _finals(suite, model_part):
    return sorted(p for p in suite.results_dir().rglob("seed*.json")
                  if model_part in p.as_posix() and ".search" not in p.name)


def test_rows_are_mean_std_and_ci_of_the_records(board):
    lb = lbm.build(board, board.results_dir())
    # the noisy oracle of the test items is first on test, then popularity; the valid oracle
    # scores every test candidate 0 (valid items are masked at test), so ties rank its
    # candidates by item index: below popularity
    assert [r.key for r in lb.rows] == ["oracle-test-noisy", "pop", "oracle"]
    assert lb.rejected == [] and lb.failed == []
    oracle = lb.row("oracle")
    assert oracle.params == {"noise": 0.0, "target": "valid", "explode": False} and oracle.seeds == [0, 1, 2]
    noisy = lb.row("oracle-test-noisy")
    vals = [read_record(p)["metrics"]["test"]["ndcg@10"] for p in _finals(board, noisy.params_hash[:8])]
    assert len(vals) == 3 and len(set(vals)) > 1  # seeded noise: the seeds differ
    s = noisy.test["ndcg@10"]
    assert s.mean == pytest.approx(np.mean(vals)) and s.std == pytest.approx(np.std(vals, ddof=1))
    from scipy import stats

    half = stats.t.ppf(0.975, 2) * np.std(vals, ddof=1) / np.sqrt(3)
    assert (s.ci_low, s.ci_high) == pytest.approx((np.mean(vals) - half, np.mean(vals) + half))
    # the valid oracle is deterministic (no noise): its std is exactly 0
    assert oracle.test["ndcg@10"].std == 0.0


def test_significance_against_the_best(board):
    lb = lbm.build(board, board.results_dir())
    best = next(r for r in lb.rows if "ndcg@10" in r.best)
    # the noisy test oracle sees the test items: it is the best on test (it is not selected
    # on anything, it is a fixed configuration), and pop is far behind it
    assert best.key == "oracle-test-noisy"
    assert lb.row("pop").marks["ndcg@10"].significant
    assert set(lb.main_tests["pop"]) == {"t-test", "wilcoxon", "fisher", "t-test_holm", "wilcoxon_holm",
                                         "fisher_holm"}
    assert best.key not in lb.main_tests and "ndcg@10" not in best.marks
    md = lbm.to_markdown(lb, board)
    row = next(line for line in md.splitlines() if line.startswith("| 2 "))
    assert "pop" in row and "†" in row
    best_row = next(line for line in md.splitlines() if line.startswith("| 1 "))
    assert "**" in best_row and "†" not in best_row.split("|")[3]


def _rebuilt_reasons(suite):
    lb = lbm.build(suite, suite.results_dir())
    return lb, dict(lb.rejected)


@pytest.mark.parametrize("field,edit,reason", [
    ("fingerprint", lambda r: r["dataset"].update(fingerprint="0" * 64), "dataset fingerprint 000000000000 differs"),
    ("protocol", lambda r: r.update(protocol_hash="f" * 16), "protocol ffffffffffffffff differs"),
    ("selection", lambda r: r["selection"].update(on="test"), "selected on 'test'"),
    ("features", lambda r: r["features"].update({"text/x": "ab" * 8}), "feature text/x has fingerprint"),
    ("seed", lambda r: r.update(seed=7), "seed 7 is not one of the suite's seeds"),
    ("suite", lambda r: r.update(suite="other"), "suite 'other' is not 't-suite'"),
])
def test_records_that_do_not_fit_are_rejected_never_averaged(board, field, edit, reason):
    lb0 = lbm.build(board, board.results_dir())
    p = _finals(board, "/pop/")[1]
    rec = read_record(p)
    edit(rec)
    if field == "features":  # the suite pins the feature fingerprints it accepts
        text = board.path.read_text().replace("[protocol]", '[dataset.feature_fingerprints]\n"text/x" = "cd"\n\n'
                                              "[protocol]", 1)
        board.path.write_text(text)
        board = load_suite(board.path)
    if field == "fingerprint":  # pinned: a foreign one is rejected (unpinned, it is an error: test_integrity)
        genuine = read_record(_finals(board, "/pop/")[0])["dataset"]["fingerprint"]
        board.path.write_text(board.path.read_text().replace('version = "1"', f'version = "1"\nfingerprint = "{genuine}"'))
        board = load_suite(board.path)
    write_record(p, rec)
    lb, rejected = _rebuilt_reasons(board)
    rel = p.relative_to(board.results_dir()).as_posix()
    assert reason in rejected[rel]
    pop = lb.row("pop")
    assert len(pop.seeds) == 2 and pop.seeds != lb0.row("pop").seeds or field == "seed"
    assert rel not in pop.records
    md = lbm.to_markdown(lb, board)
    assert f"rejected `{rel}`" in md and "2/3" in md


def test_a_config_the_search_did_not_choose_is_rejected(board):
    # forge final records for a grid candidate that lost on validation (as if someone had run
    # every candidate on test and kept the one they liked)
    lb0 = lbm.build(board, board.results_dir())
    chosen = lb0.row("oracle")
    search = [read_record(p) for p in board.results_dir().rglob("*.search.json")]
    loser = next(r for r in search if r["model"]["params"] == {"noise": 0.0, "target": "test", "explode": False})
    for p in _finals(board, chosen.params_hash[:8]):
        rec = read_record(p)
        rec["model"] = loser["model"]
        rec["selection"]["chosen"] = loser["model"]["params_hash"]
        dest = p.parent.parent / loser["model"]["params_hash"][:8] / p.name
        shutil.copy(p.with_name(p.stem + ".per_user.npz"), dest.with_name(dest.stem + ".per_user.npz"))
        write_record(dest, rec)
    lb, rejected = _rebuilt_reasons(board)
    assert lb.row("oracle").params_hash == chosen.params_hash
    forged = [k for k in rejected if loser["model"]["params_hash"][:8] in k]
    assert len(forged) == 3 and all("superseded: the search records of oracle now choose" in rejected[k]
                                    for k in forged)
    # a record that claims a grid model but was not produced by the search is rejected too
    p = _finals(board, chosen.params_hash[:8])[0]
    rec = read_record(p)
    rec["selection"] = {"method": "fixed", "on": "valid"}
    write_record(p, rec)
    _, rejected = _rebuilt_reasons(board)
    assert "was not the search's choice" in rejected[p.relative_to(board.results_dir()).as_posix()]


def test_rebuild_gives_identical_bytes_and_check_sees_any_change(board):
    lb = lbm.build(board, board.results_dir())
    out = lbm.write(lb, board)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == sorted(lbm.FILES)
    out2 = lbm.write(lbm.build(board, board.results_dir()), board)
    assert {p.name: p.read_bytes() for p in out2.iterdir()} == first
    assert lbm.check(lbm.build(board, board.results_dir()), board) == []
    # no clock and no absolute path in what is written
    for name, data in first.items():
        text = data.decode()
        assert str(board.folder) not in text and "/tmp/" not in text, name
        assert not re.search(r"20\d\d-\d\d-\d\dT", text), name
    (out / "leaderboard.csv").write_bytes(first["leaderboard.csv"].replace(b"pop", b"p0p", 1))
    problems = lbm.check(lbm.build(board, board.results_dir()), board)
    assert problems == ["leaderboard.csv: differs from a rebuild at line 3"]  # pop's row: the second
    (out / "index.html").unlink()
    assert "index.html: missing" in lbm.check(lbm.build(board, board.results_dir()), board)


def test_a_protocol_change_needs_a_new_version(board):
    lbm.write(lbm.build(board, board.results_dir()), board)
    v1 = {p.name: p.read_bytes() for p in (board.folder / "v1").iterdir()}
    text = board.path.read_text().replace('"ndcg@10", "recall@10",', '"ndcg@10", "recall@10", "hit@10",')
    board.path.write_text(text)
    changed = load_suite(board.path)
    lb = lbm.build(changed, changed.results_dir())
    assert lb.rows == [] and all("protocol" in why for _, why in lb.rejected)  # old records do not fit
    with pytest.raises(ConfigError, match="v1 was built under a different protocol_hash.*version = 2"):
        lbm.write(lb, changed)
    board.path.write_text(text.replace("version = 1", "version = 2", 1))
    v2 = load_suite(board.path)
    out = lbm.write(lbm.build(v2, v2.results_dir()), v2)
    assert out.name == "v2"
    assert {p.name: p.read_bytes() for p in (board.folder / "v1").iterdir()} == v1  # frozen


def _github_tables(md: str):
    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def test_markdown_tables_render_on_github(board):
    md = lbm.to_markdown(lbm.build(board, board.results_dir()), board)
    tables = _github_tables(md)
    assert len(tables) >= 4  # results, beyond accuracy, statistics, model selection, environment
    for t in tables:
        cells = [len(re.findall(r"(?<!\\)\|", line)) for line in t]
        assert len(set(cells)) == 1, t  # every row has the header's number of cells
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", t[1].replace(" ", "")), t[1]  # delimiter row
    assert "### oracle: grid search, 4 candidates" in md
    assert "| Rank   | Model" in md


def test_csv_and_json_carry_the_same_numbers(board):
    lb = lbm.build(board, board.results_dir())
    rows = list(csv.DictReader(io.StringIO(lbm.to_csv(lb))))
    data = json.loads(lbm.to_json(lb))
    assert [r["model"] for r in rows] == [r["model"] for r in data["rows"]] == ["oracle-test-noisy", "pop", "oracle"]
    for r, j in zip(rows, data["rows"]):
        assert float(r["ndcg@10_mean"]) == pytest.approx(j["test"]["ndcg@10"]["mean"], abs=1e-6)
        assert float(r["ndcg@10_ci_high"]) == pytest.approx(j["test"]["ndcg@10"]["ci_high"], abs=1e-6)
    assert data["rows"][2]["selection"]["method"] == "grid" and data["rows"][2]["distribution"] == "fake-oracle"
    assert data["identity"]["protocol_hash"] == lb.protocol_hash and data["significance"]["correction"] == "holm"


def test_html_page_is_self_contained(board):
    lb = lbm.build(board, board.results_dir())
    html = lbm.render(lb, board)["index.html"]
    assert "http://" not in html and "https://" not in html  # no CDN, no network
    assert not re.search(r"<(script|img|link|iframe)[^>]*\b(src|href)=", html)
    assert html.count('<table id="board">') == 1 and html.count("<tr data-model=") == 3
    n_charts = sum(1 for c in lb.columns if any(c in r.test for r in lb.rows))
    assert html.count('<svg viewBox') == n_charts + 1  # one bar chart per metric + the time scatter
    assert html.count('class="err"') >= 1  # error bars
    assert 'id="scatter-plot"' in html and "training time" in html


def test_beyond_accuracy_and_long_tail_columns(board):
    lb = lbm.build(board, board.results_dir())
    assert lb.metrics == ["ndcg@10", "recall@10"]
    assert lb.beyond == ["coverage@10", "gini@10", "novelty@10", "recall@10/tail"]
    pop = lb.row("pop")
    recs = [read_record(p) for p in _finals(board, "/pop/")]
    assert pop.test["recall@10/tail"].mean == pytest.approx(np.mean([r["metrics"]["test"]["recall@10/tail"]
                                                                       for r in recs]))


def test_item_groups_and_restricted_metrics_hand_computed():
    import torch

    from mmbench.evaluate.ranking import item_groups, rank_and_score

    g = item_groups(np.array([5, 0, 3, 3, 1, 2]))
    # head = the top ceil(0.2 * 6) = 2 items by popularity, ties by index: items 0 and 2
    assert np.flatnonzero(g["tail"]).tolist() == [1, 3, 4, 5] and np.flatnonzero(g["cold"]).tolist() == [1]
    scores = torch.tensor([[5.0, 4.0, 3.0, 0.0, 6.0, 0.0],    # user 0 ranks 4, 0, 1
                           [0.0, 0.0, 5.0, 3.0, 1.0, 6.0]])   # user 1 ranks 5, 2, 3
    target = (np.array([0, 2, 3]), np.array([1, 4, 2]))     # user 0: {1, 4}; user 1: {2}
    per_user, _, _, _ = rank_and_score(lambda u: scores[u].clone(), np.array([0, 1]), 6, target, None,
                                       ["recall@3", "recall@3/tail", "precision@3/tail", "recall@3/cold"],
                                       groups=g)
    assert per_user["recall@3"].tolist() == [1.0, 1.0]
    # user 0's tail targets {1, 4}: both in the top 3; user 1 has no tail target: left out (NaN)
    assert per_user["recall@3/tail"][0] == 1.0 and np.isnan(per_user["recall@3/tail"][1])
    assert per_user["precision@3/tail"][0] == pytest.approx(2 / 3)
    assert per_user["recall@3/cold"][0] == 1.0  # cold target {1} is found at rank 3


def test_evaluate_ranking_adds_group_metrics_in_the_same_pass(tmp_path, cards_dir):
    import torch

    from mmbench.data.cards import find_card
    from mmbench.data.prepare import prepare
    from mmbench.evaluate.ranking import evaluate_ranking

    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=30, n_items=25, per_user=10))
    write_card(cards_dir, "toy", tmp_path / "d")
    ds = prepare(find_card("toy"))
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(ds.n_users, ds.n_items, generator=g)
    res = evaluate_ranking(lambda u: scores[u].clone(), ds, "test", ["recall@10", "recall@10/tail"])
    v = res.per_user["recall@10/tail"]
    assert res.metrics["recall@10/tail"] == pytest.approx(np.nanmean(v)) and np.isfinite(v).sum() < len(v) + 1
    plain = evaluate_ranking(lambda u: scores[u].clone(), ds, "test", ["recall@10"])
    assert plain.metrics["recall@10"] == res.metrics["recall@10"] and "recall@10/tail" not in plain.metrics


@pytest.mark.slow
def test_cli_check_and_compare(board, tmp_path):
    env = {"MMBENCH_HOME": str(tmp_path / "home")}
    # not built yet: the records claim nothing, so check reports it and passes (unless told to require a board)
    unbuilt = run_cli("leaderboard", "check", board.folder, env=env)
    assert "v1: not built yet (" in unbuilt.stdout and not (board.folder / "v1").exists()
    required = run_cli("leaderboard", "check", board.folder, "--require-built", env=env, check=False)
    assert required.returncode == 1 and "README.md: missing" in required.stderr
    out = run_cli("leaderboard", "build", board.folder, "--quiet", env=env)
    assert "index.html" in out.stdout
    ok = run_cli("leaderboard", "check", board.folder, env=env)
    assert "identical" in ok.stdout
    readme = board.folder / "v1" / "README.md"
    readme.write_text(readme.read_text() + "\nhand edit\n")
    bad = run_cli("leaderboard", "check", board.folder, env=env, check=False)
    assert bad.returncode == 1 and "README.md: differs" in bad.stderr
    root = board.results_dir() / "t-suite" / "toy"
    cmp_ = run_cli("compare", root / "pop", root / "oracle", root / "oracle-test", "-m", "ndcg@10", env=env)
    lines = cmp_.stdout.splitlines()
    pop = next(line for line in lines if " pop " in line)
    assert re.search(r"ᵃ|ᵇ|ᶜ", "\n".join(lines)) and "Superscripts" in cmp_.stdout
    assert not re.search(r"[ᵃᵇᶜᵈ]", pop)  # pop beats nobody
    one = run_cli("compare", root / "pop", env=env, check=False)
    assert one.returncode == 2 and "at least two records of different models" in one.stderr


def _ignored_by_git(path) -> bool:
    """Whether git ignores ``path`` (a board that `make demo` builds locally is not committed)."""
    import subprocess

    try:
        out = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=path.parent, capture_output=True)
    except OSError:  # no git here: a source tree without history counts what it holds
        return False
    return out.returncode == 0


def _committed_boards() -> list[str]:
    """Suite files (``<suite>/suite.toml`` or an older ``suite.v<N>.toml``) whose board is
    committed and whose data is here: the embedded ml-100k, and lfm2k when its mirror is."""
    from .conftest import ROOT, SHARED_DATA

    out = []
    for path in sorted((ROOT / "leaderboards").glob("*/suite*.toml")):
        suite = load_suite(path)
        board = path.parent / f"v{suite.version}" / "leaderboard.json"
        if not board.exists() or _ignored_by_git(board):  # e.g. ml100k-quick's, built by `make demo`
            continue
        if suite.dataset["name"] == "lfm2k" and not (SHARED_DATA / "lfm2k").is_dir():
            continue
        out.append(f"{path.parent.name}/{path.name}")
    return out


@pytest.mark.parametrize("suite_file", _committed_boards())
def test_committed_leaderboards_rebuild_to_the_same_bytes(suite_file, monkeypatch):
    """What `mmbench leaderboard check` (CI) verifies, on every committed board (an older
    version through the suite file it was built from): nothing rejected or failed, every row
    on every seed, and a rebuild identical to the committed files."""
    from .conftest import ROOT, SHARED_DATA

    if suite_file.startswith("lfm2k"):
        monkeypatch.setenv("MMBENCH_MIRROR", f"{SHARED_DATA / 'lfm2k'}:{SHARED_DATA / 'hetrec2011-lastfm-2k-raw'}")
    suite = load_suite(ROOT / "leaderboards" / suite_file)
    lb = lbm.build(suite, suite.results_dir())
    assert lb.rejected == [] and lb.failed == [] and len(lb.rows) >= 4
    assert all(len(r.seeds) == len(suite.seeds) for r in lb.rows)
    assert lbm.check(lb, suite) == []
