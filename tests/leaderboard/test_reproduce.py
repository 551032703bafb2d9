"""`leaderboard reproduce`: committed records run again, bit for bit, or a reason."""
import random

from mmbench.leaderboard.reproduce import difference, reproduce
from mmbench.records import read_per_user, read_record, write_record


def test_records_run_again_bit_identical(trust):
    report = reproduce(trust, sample=3, seed=1)
    assert report.skipped == "" and report.finals == 6 and report.eligible == 6
    finals = sorted(p.relative_to(trust.results_dir()).as_posix() for p in trust.results_dir().rglob("seed?.json"))
    drawn = sorted(random.Random(1).sample(finals, 3))  # the draw is seeded: it can be replayed
    assert [o.record for o in report.outcomes] == drawn
    assert [o.status for o in report.outcomes] == ["identical"] * 3, report.outcomes


def test_a_record_that_no_longer_reproduces_fails_with_the_difference(trust):
    path = next(p for p in trust.results_dir().rglob("seed1.json") if "/bpr/" in p.as_posix())
    rec = read_record(path)
    rec["fit"]["history"][1]["loss"] += 1e-6  # metrics untouched: only the training history differs
    write_record(path, rec, read_per_user(path))
    report = reproduce(trust, sample=6, seed=0)
    bad = [o for o in report.outcomes if o.status != "identical"]
    assert not report.ok and [o.record for o in bad] == [path.relative_to(trust.results_dir()).as_posix()]
    assert bad[0].status == "differs" and bad[0].detail.startswith("fit.history differs")


def test_what_cannot_run_here_is_left_out_with_the_reason(trust):
    report = reproduce(trust, sample=2, max_seconds=0)
    assert report.eligible == 0 and report.outcomes == [] and report.ok
    assert report.left_out == {"takes more than 0 s": 6}


def test_difference_names_the_first_metric_that_moved():
    old = {"metrics": {"test": {"ndcg@10": 0.25}, "valid": {}}, "fit": {}}
    new = {"metrics": {"test": {"ndcg@10": 0.25000001}, "valid": {}}, "fit": {}}
    assert difference(old, new, {}, {}) == "metrics.test.ndcg@10: recorded 0.25, now 0.25000001"
    import numpy as np

    same = {"metrics": old["metrics"], "fit": {}}
    assert difference(old, same, {"u": np.array([1.0, np.nan])}, {"u": np.array([1.0, np.nan])}) is None
    assert difference(old, same, {"u": np.array([1.0])}, {"u": np.array([1.5])}) == "per-user values of u differ"


def test_a_record_made_under_another_tie_order_is_left_out(trust):
    path = next(p for p in trust.results_dir().rglob("seed0.json") if "/bpr/" in p.as_posix())
    rec = read_record(path)
    assert rec["env"]["ranking"] == "score desc, item index asc"
    del rec["env"]["ranking"]  # as records made before ties were ordered by item index
    write_record(path, rec, read_per_user(path))
    report = reproduce(trust, sample=6, seed=0)
    assert report.left_out == {"ranked ties in another order than this mmbench (rerun at the record's commit)": 1}
    assert report.eligible == 5 and report.ok


def test_a_rating_only_record_ranks_nothing_so_its_tie_order_does_not_matter():
    from mmbench.leaderboard.reproduce import _why_not

    rec = {"protocol": {"metrics": [], "rating_metrics": ["rmse"]}, "env": {}, "features": {}, "timing": {}}
    assert _why_not(rec, set(), None) is None
    rec["protocol"]["metrics"] = ["ndcg@10"]
    assert _why_not(rec, set(), None).startswith("ranked ties in another order")


def test_a_final_record_that_reused_its_search_model_counts_that_training():
    """Its own fit time is the reload (0.03 s), but a rerun trains every epoch again."""
    from mmbench.leaderboard.reproduce import _why_not, rerun_seconds

    rec = {"protocol": {"metrics": []}, "env": {}, "features": {},
           "timing": {"fit_s": 0.034, "eval_s": 0.078},
           "fit": {"reused": "seed0.search.json", "epochs_run": 400, "seconds_per_epoch": 0.34}}
    assert abs(rerun_seconds(rec) - (400 * 0.34 + 0.078)) < 1e-9
    assert _why_not(rec, set(), 20) == "takes more than 20 s"
    del rec["fit"]["reused"], rec["fit"]["epochs_run"]  # a model without epochs: its fit time counts
    assert abs(rerun_seconds(rec) - 0.112) < 1e-9 and _why_not(rec, set(), 20) is None
