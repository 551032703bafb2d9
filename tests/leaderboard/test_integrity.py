"""Records are evidence: a hand-edited metric, a missing per-user file, missing search
records, a foreign fingerprint, a changed committed record and a dirty tree are each
rejected (or refused) with a one-line reason; unconverged cells are marked and fail the
check of a converged track; a board proves its definition; rules 1 only for old boards."""
import json

import numpy as np
import pytest

from mmbench import leaderboard as lbm
from mmbench.errors import ConfigError, RecordError
from mmbench.leaderboard.integrity import compute, converged
from mmbench.records import per_user_path, read_per_user, read_record, write_record
from mmbench.suite import load_suite

from .conftest import write_suite


def _finals(suite, part):
    return sorted(p for p in suite.results_dir().rglob("seed*.json") if part in p.as_posix() and ".search" not in p.name)


def _reasons(suite, results=None):
    lb = lbm.build(suite, results or suite.results_dir())
    return lb, dict(lb.rejected)


def _rel(suite, path):
    return path.relative_to(suite.results_dir()).as_posix()


def _one_line(text):
    return "\n" not in text and text.strip() == text


def test_the_untouched_board_is_accepted(trust):
    lb, rejected = _reasons(trust)
    assert rejected == {} and [r.key for r in sorted(lb.rows, key=lambda r: r.key)] == ["bpr", "oracle", "pop"]
    assert all(len(r.seeds) == 2 for r in lb.rows)


def test_a_hand_edited_metric_is_rejected(trust):
    p = _finals(trust, "/pop/")[1]
    rec = read_record(p)
    true = rec["metrics"]["test"]["ndcg@10"]
    rec["metrics"]["test"]["ndcg@10"] = 0.99
    write_record(p, rec)  # the per-user file stays as the run wrote it
    lb, rejected = _reasons(trust)
    want = float(np.nanmean(read_per_user(p)["ndcg@10"]))
    assert want == pytest.approx(true, abs=1e-8)
    why = rejected[_rel(trust, p)]
    assert why == f"metrics.test.ndcg@10 = 0.99 but its per-user file gives {want:.8f}" and _one_line(why)
    assert lb.row("pop").seeds == [0]  # never averaged


def test_a_missing_or_unreadable_per_user_file_is_rejected(trust):
    a, b = _finals(trust, "/bpr/")
    per_user_path(a).unlink()
    per_user_path(b).write_bytes(b"not a zip")
    lb, rejected = _reasons(trust)
    assert rejected[_rel(trust, a)] == "its per-user file seed0.per_user.npz is missing"
    assert rejected[_rel(trust, b)].startswith("its per-user file is unreadable (") and _one_line(rejected[_rel(trust, b)])
    assert "bpr" not in {r.key for r in lb.rows}  # no row without evidence, no silently dropped marks


def test_deleted_search_records_take_the_row_with_them(trust):
    for p in trust.results_dir().rglob("*.search.json"):
        p.unlink()
    lb, rejected = _reasons(trust)
    finals = _finals(trust, "/oracle/")
    assert len(finals) == 2 and "oracle" not in {r.key for r in lb.rows}
    for p in finals:
        why = rejected[_rel(trust, p)]
        assert "its selection claims candidate" in why and "whose search record is missing" in why and _one_line(why)


def test_a_search_record_whose_value_was_changed_breaks_the_claim(trust):
    p = next(trust.results_dir().rglob("*.search.json"))
    rec = read_record(p)
    rec["metrics"]["valid"]["ndcg@10"] = 0.5
    write_record(p, rec)
    _, rejected = _reasons(trust)
    assert any("on validation, its search records do not" in why for why in rejected.values())


def test_a_foreign_fingerprint_is_an_error_not_a_vote(trust):
    """The suite pins no fingerprint: one record with another dataset cannot be outvoted
    into or out of the table; the build stops and says so."""
    p = _finals(trust, "/pop/")[0]
    rec = read_record(p)
    rec["dataset"]["fingerprint"] = "f" * 64
    write_record(p, rec)
    with pytest.raises(RecordError, match=r"records disagree on the dataset fingerprint \(\d+ with \w+, 1 with "
                                          r"ffffffffffff\): which is right is not a vote; pin") as e:
        lbm.build(trust, trust.results_dir())
    assert _one_line(str(e.value))
    genuine = read_record(_finals(trust, "/pop/")[1])["dataset"]["fingerprint"]
    pinned = write_suite(trust.folder, dataset=f'fingerprint = "{genuine}"')
    _, rejected = _reasons(pinned)
    assert rejected == {_rel(trust, p): "dataset fingerprint ffffffffffff differs from the suite's " + genuine[:12]}


def test_a_committed_record_that_changes_breaks_the_manifest(trust):
    lb = lbm.build(trust, trust.results_dir())
    lbm.write(lb, trust)
    board = json.loads((trust.folder / "v1" / "leaderboard.json").read_text())
    p = _finals(trust, "/pop/")[0]
    assert board["manifest"][_rel(trust, p)] == __import__("hashlib").sha256(p.read_bytes()).hexdigest()
    assert [x for x in lbm.check(lbm.build(trust, trust.results_dir()), trust) if "not converged" not in x] == []
    rec = read_record(p)
    rec["created"] = "2030-01-01T00:00:00+00:00"  # any byte: the numbers need not change
    write_record(p, rec)
    lb2, rejected = _reasons(trust)
    assert rejected == {_rel(trust, p): "seed0.json differs from the sha256 in the committed board's manifest"}
    problems = lbm.check(lb2, trust)
    assert f"rejected {_rel(trust, p)}: seed0.json differs from the sha256 in the committed board's manifest" in problems
    p.unlink()
    _, rejected = _reasons(trust)
    assert rejected[_rel(trust, p)] == "listed in the committed board's manifest, but the file is gone"


def test_records_from_a_dirty_tree_are_rejected_for_a_committed_board(trust, tmp_path):
    import shutil

    p = _finals(trust, "/pop/")[0]
    rec = read_record(p)
    rec["env"]["git"] = {"sha": "abcdef0123" * 4, "dirty": True}
    write_record(p, rec)
    _, rejected = _reasons(trust)
    assert rejected == {_rel(trust, p): "made from a dirty working tree (commit abcdef0123 plus uncommitted changes)"}
    # from a clean tree, `suite run` runs it again (it is stale for this suite)
    from mmbench.suite import status

    (stale,) = [r for r in status(trust) if r["state"] == "stale"]
    assert (stale["model"], stale["seed"]) == ("pop", 0) and "its committed board would reject it" in stale["reason"]
    rec["env"]["git"] = {"sha": None, "dirty": None}
    write_record(p, rec)
    assert _reasons(trust)[1][_rel(trust, p)] == "made outside a git checkout of mmbench: its code cannot be identified"
    # the same records elsewhere (--results): not the committed board, a working one
    shutil.copytree(trust.results_dir(), tmp_path / "elsewhere")
    assert _reasons(trust, tmp_path / "elsewhere")[1] == {}


def test_converged_by_hand():
    def rec(epochs, patience, run, best, every=1):
        return {"model": {"params": {"epochs": epochs, "patience": patience, "eval_every": every}},
                "fit": {"epochs_run": run, "best_epoch": best}}

    assert converged(rec(10, 3, 10, 8)) is False  # best in the last 3 of the budget: cut
    assert converged(rec(10, 3, 10, 10)) is False  # best at the cap
    assert converged(rec(10, 3, 10, 7)) is True  # 3 evaluations without a better one: it had stopped improving
    assert converged(rec(10, 3, 6, 3)) is True  # early stopping fired
    assert converged(rec(10, 2, 10, 7, every=2)) is False  # patience counts evaluations: a window of 4 epochs
    assert converged({"model": {"params": {}}, "fit": {}}) is None  # no epoch budget (pop)


def test_unconverged_cells_are_marked_and_fail_the_check(trust):
    recs = [read_record(p) for p in _finals(trust, "/bpr/")]
    assert [(r["fit"]["epochs_run"], r["model"]["params"]["epochs"]) for r in recs] == [(2, 2), (2, 2)]
    lb = lbm.build(trust, trust.results_dir())
    assert lb.row("bpr").unconverged == [0, 1] and lb.row("pop").unconverged == []
    md = lbm.to_markdown(lb, trust)
    bpr_line = next(line for line in md.splitlines() if line.startswith("|") and " bpr " in line)
    assert bpr_line.count("‡") == len(lb.metrics)
    assert "‡: not converged" in md and "(fixed-budget track)" not in md
    lbm.write(lb, trust)
    problems = lbm.check(lbm.build(trust, trust.results_dir()), trust)
    assert len(problems) == 1 and problems[0].startswith("not converged: bpr seed(s) [0, 1]")
    assert "‡" in lbm.render(lb, trust)["index.html"]
    assert json.loads(lbm.to_json(lb))["rows"][[r.key for r in lb.rows].index("bpr")]["not_converged_seeds"] == [0, 1]


def test_a_fixed_budget_track_says_so_and_passes(trust):
    fixed = write_suite(trust.folder, head='track = "fixed-budget"')
    lb = lbm.build(fixed, fixed.results_dir())
    lbm.write(lb, fixed)
    md = (fixed.folder / "v1" / "README.md").read_text()
    assert md.startswith("# Leaderboard: trust v1 (fixed-budget track)\n") and "fixed-budget track</span>" in (
        fixed.folder / "v1" / "index.html").read_text()
    assert lb.row("bpr").unconverged == [0, 1] and lbm.check(lbm.build(fixed, fixed.results_dir()), fixed) == []


def test_compute_is_the_records_sum_and_their_busy_time():
    def rec(start_s, total, fit, ev):  # a record notes when its run began (``created``) and how long it took
        from datetime import datetime, timezone

        return {"created": datetime.fromtimestamp(1_700_000_000 + start_s, timezone.utc).isoformat(),
                "timing": {"fit_s": fit, "eval_s": ev, "total_s": total}}

    # runs over [0, 10], [5, 12] and [20, 25]: busy 12 + 5 seconds
    c = compute([rec(0, 10, 9.0, 1.0), rec(5, 7, 6.5, 0.5), rec(20, 5, 4.0, 1.0)])
    assert c == {"runs": 3, "compute_s": 22.0, "wall_s": 17.0}


def test_the_board_reports_its_compute(trust):
    lb = lbm.build(trust, trust.results_dir())
    used = [read_record(trust.results_dir() / rel) for r in lb.rows for rel in r.records]
    used += [read_record(p) for p in trust.results_dir().rglob("*.search.json")]
    assert lb.compute["runs"] == len(used) == 6 + 4 and lb.compute["search_runs"] == 4  # oracle and bpr: 2 each
    assert lb.compute["compute_s"] == round(sum(r["timing"]["fit_s"] + r["timing"]["eval_s"] for r in used), 1)
    md = lbm.to_markdown(lb, trust)
    assert f"Compute: {lb.compute['compute_s']:,.0f} s of fitting and evaluation over 10 runs (6 final, 4 search)" in md


def test_a_changed_definition_needs_a_new_version(trust, monkeypatch):
    lbm.write(lbm.build(trust, trust.results_dir()), trust)
    v1 = (trust.folder / "v1" / "leaderboard.json").read_bytes()
    stored = json.loads(v1)
    assert stored["rules"] == 2 and stored["definition"]["tuning"]["configurations"] == 2
    assert stored["definition"]["models"][1]["space"] == {"noise": [0.0, 0.7], "target": ["valid", "test"]}
    # the model widens its declared search space after the board was committed
    from mmbench.runner import ModelSpec

    cls = ModelSpec.resolve("oracle").cls
    monkeypatch.setitem(cls.params_, "noise", cls.params_["noise"].__class__(0.0, ge=0.0, space=(0.0, 0.7, 2.0)))
    widened = load_suite(trust.path)
    with pytest.raises(ConfigError, match=r"definition changed since v1 was built \(models.oracle\).*version = 2"):
        lbm.check_frozen(widened, trust.folder / "v1")
    with pytest.raises(ConfigError, match="definition changed"):
        lbm.write(lbm.build(widened, widened.results_dir()), widened)
    assert (trust.folder / "v1" / "leaderboard.json").read_bytes() == v1  # frozen
    v2 = write_suite(trust.folder, head="").path
    v2.write_text(v2.read_text().replace("version = 1", "version = 2"))
    lb2 = lbm.build(load_suite(v2), trust.results_dir())
    out = lbm.write(lb2, load_suite(v2))
    assert out.name == "v2" and lb2.superseded == [(1, 2)]
    assert "Supersedes v1 (rules 2): kept as committed" in (out / "README.md").read_text()


def test_old_rules_only_for_a_board_built_under_them(trust):
    old = write_suite(trust.folder, head="rules = 1", tuning="")
    with pytest.raises(ConfigError, match="rules = 1 marks a board built before rules 2, but v1/ holds no such board"):
        lbm.write(lbm.build(old, old.results_dir()), old)
    # a board committed before rules existed (its leaderboard.json has no rules): checked as it was built
    v1 = trust.folder / "v1"
    v1.mkdir()
    (v1 / "leaderboard.json").write_text(json.dumps({"schema": "mmbench.leaderboard/2"}))
    lbm.check_rules(old)
    lb = lbm.build(old, old.results_dir())
    assert lb.rules == 1 and "pop" in {r.key for r in lb.rows} and all(r.unconverged == [] for r in lb.rows)
    assert "‡" not in lbm.to_markdown(lb, old) and "manifest" not in lbm.to_json(lb)


@pytest.mark.slow
def test_the_commands_print_the_reason_and_check_fails(trust):
    from ..conftest import run_cli

    p = _finals(trust, "/pop/")[1]
    rec = read_record(p)
    rec["metrics"]["test"]["ndcg@10"] = 0.99
    write_record(p, rec)
    built = run_cli("leaderboard", "build", trust.folder, "--quiet")
    line = next(x for x in built.stdout.splitlines() if x.startswith("  rejected "))
    assert line.startswith(f"  rejected {_rel(trust, p)}: metrics.test.ndcg@10 = 0.99 but its per-user file gives 0.")
    checked = run_cli("leaderboard", "check", trust.folder, check=False)
    assert checked.returncode == 1 and f"rejected {_rel(trust, p)}: metrics.test.ndcg@10 = 0.99" in checked.stderr
