"""The parity statistics and records: Welch's test against its formula, the comparison's
gap and verdict, the record files a suite keeps."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from mmbench.errors import DataError
from mmbench.parity.report import SCHEMA, compare, load_parity, readme_text, summary_text, table_rows, welch_p
from mmbench.protocol import Protocol


def welch_by_hand(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch-Satterthwaite
    return 2 * stats.t.sf(abs(t), df)


@pytest.mark.parametrize("a,b", [([0.30, 0.31, 0.29], [0.20, 0.22, 0.21]), ([0.1, 0.2, 0.3], [0.11, 0.25, 0.4, 0.3]),
                                 ([0.5, 0.5, 0.6], [0.5, 0.51, 0.52])])
def test_welch_p_is_the_formula(a, b):
    assert welch_p(a, b) == pytest.approx(welch_by_hand(a, b), rel=1e-10)


def test_welch_without_spread_is_exact_equality():
    assert welch_p([0.2, 0.2, 0.2], [0.2, 0.2, 0.2]) == 1.0
    assert welch_p([0.2, 0.2, 0.2], [0.3, 0.3, 0.3]) == 0.0
    with pytest.raises(ValueError):
        welch_p([0.2], [0.3, 0.4])


def runs(values, metric="ndcg@10"):
    return [{"seed": s, "metrics": {"test": {metric: v}}, "timing": {"total_s": 2.0}, "fit": {"best_epoch": 10 + s}}
            for s, v in enumerate(values)]


def test_compare_gives_the_relative_gap_and_the_verdict():
    protocol = Protocol(metrics=("ndcg@10",), main_metric="ndcg@10")
    close = compare(runs([0.30, 0.31, 0.29]), runs([0.305, 0.295, 0.31]), protocol)["ndcg@10"]
    assert close["ours"]["mean"] == pytest.approx(0.30) and close["theirs"]["mean"] == pytest.approx(0.91 / 3)
    assert close["gap"] == pytest.approx((0.30 - 0.91 / 3) / (0.91 / 3), abs=1e-6)
    assert close["within_noise"] is True
    far = compare(runs([0.30, 0.31, 0.29]), runs([0.20, 0.21, 0.19]), protocol)["ndcg@10"]
    assert far["gap"] == pytest.approx(0.5) and far["within_noise"] is False
    assert far["p"] == pytest.approx(welch_by_hand([0.30, 0.31, 0.29], [0.20, 0.21, 0.19]), abs=1e-6)


def record(model="vbpr", peer="cornac"):
    protocol = Protocol(metrics=("ndcg@10",), main_metric="ndcg@10")
    ours, theirs = runs([0.30, 0.31, 0.29]), runs([0.20, 0.21, 0.19])
    return {"schema": SCHEMA, "model": model, "peer": {"name": peer, "version": "3.0.1"},
            "mapping": {"peer_model": "VBPR", "settings": {"k": 10}, "features": "standard", "notes": ["a note"]},
            "main_metric": "ndcg@10", "seeds": [0, 1, 2], "dataset": {"name": "ml-100k", "fingerprint": "ab" * 32},
            "comparison": compare(ours, theirs, protocol), "cost_s": {"ours": 6.0, "theirs": 6.0, "total": 12.0},
            "test": "Welch", "ours": ours, "theirs": theirs, "params": {"epochs": 30}}


def test_records_are_read_from_the_suite_folder_sorted_and_tabled(tmp_path):
    (tmp_path / "parity").mkdir()
    for model, peer in (("vbpr", "cornac"), ("bpr", "recbole")):
        (tmp_path / "parity" / f"{model}-{peer}.json").write_text(json.dumps(record(model, peer)))
    recs = load_parity(tmp_path)
    assert [(r["model"], r["peer"]["name"]) for r in recs] == [("bpr", "recbole"), ("vbpr", "cornac")]
    row = table_rows(recs)[0]
    assert row[3:8] == ["0.3000 ± 0.0100", "0.2000 ± 0.0100", "+50.0%", row[6], "no"]
    readme = readme_text(recs, "toy").splitlines()
    assert readme[0] == "# Parity: toy" and readme[-1].startswith("| vbpr ")
    assert readme[-1].rstrip(" |").endswith("30; 10,11,12/10,11,12")  # budget; best epochs ours / theirs
    text = summary_text(recs[1])
    assert "k=10; features given standard" in text and "  - a note" in text


def test_a_file_that_is_not_a_parity_record_is_named(tmp_path):
    (tmp_path / "parity").mkdir()
    bad = tmp_path / "parity" / "x-cornac.json"
    bad.write_text(json.dumps({"schema": SCHEMA, "model": "x"}))
    with pytest.raises(DataError, match=r"x-cornac.json.*missing peer"):
        load_parity(tmp_path)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="x-cornac.json: invalid JSON at line 1"):
        load_parity(tmp_path)
    assert load_parity(tmp_path / "elsewhere") == []
