"""Reproduction status of each cell (mmbench/leaderboard/references.py) on the small rules-2
board: a synthetic card's published values and a parity record beside our values, with the
gap and status computed here by hand from the board's means and stds."""
import json
import math

import pytest
from scipy import stats

from mmbench import leaderboard as lbm
from mmbench.leaderboard.files import render

from ..parity.test_report import record
from .conftest import trust, trust_root, write_suite  # noqa: F401 - the small rules-2 board


def publish(trust_root, tmp_path, monkeypatch, entries):  # noqa: F811
    """A copy of the toy card with ``entries`` (model, metric, value[, low, high]) published,
    found before the original."""
    cards = tmp_path / "cards"
    cards.mkdir()
    text = (trust_root / "cards" / "toy.toml").read_text(encoding="utf-8")
    text += ('\n[publications.paper]\ncitation = "A. Author. 2023. A paper"\nurl = "https://example.org/paper"\n'
             'split = "random 8:1:1"\nselection = "valid recall@20"\n')
    for model, metric, value, *rng in entries:
        text += (f'\n[[published]]\nsource = "paper"\ntable = "Table 2"\nmodel = "{model}"\nmetric = "{metric}"\n'
                 f"value = {value!r}\n" + (f"low = {rng[0]!r}\nhigh = {rng[1]!r}\n" if rng else ""))
    (cards / "toy.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("MMBENCH_CARDS", f"{cards}:{trust_root / 'cards'}")


def cells(readme, section):
    """The rows of a README section's table as lists of cells."""
    part = readme.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in part.splitlines()
            if line.startswith("|") and not line.startswith("|--") and not line.startswith("| model")]


def test_published_values_beside_ours_with_gap_and_status(trust, trust_root, tmp_path, monkeypatch):  # noqa: F811
    plain = lbm.build(trust, trust.results_dir())
    bpr, pop = plain.row("bpr").test["ndcg@10"], plain.row("pop").test["ndcg@10"]
    assert bpr.std > 0 and pop.std == 0  # bpr varies with the seed, popularity does not
    near, far = bpr.mean + 1.5 * bpr.std, bpr.mean - 3 * bpr.std
    publish(trust_root, tmp_path, monkeypatch, [("bpr", "ndcg@10", near), ("bpr", "recall@10", 0.9),
                                                ("pop", "ndcg@10", pop.mean + 0.01, pop.mean - 0.02, pop.mean + 0.02),
                                                ("bpr", "ndcg@20", 0.5)])  # ndcg@20 is no column of this board
    lb = lbm.build(trust, trust.results_dir())
    (ref,) = lb.row("bpr").references["ndcg@10"]
    assert ref.status == "reproduced" and ref.gap == pytest.approx((bpr.mean - near) / near)
    assert (ref.source, ref.citation) == ("paper, Table 2", "A. Author. 2023. A paper")
    assert ref.protocol == "split: random 8:1:1; selection: valid recall@20"
    recall = lb.row("bpr").test["recall@10"]
    (ref,) = lb.row("bpr").references["recall@10"]
    assert ref.status == "deviates" and ref.gap == pytest.approx((recall.mean - 0.9) / 0.9)
    (ref,) = lb.row("pop").references["ndcg@10"]  # 0.01 away with no spread, but within the reported range
    assert ref.status == "reproduced" and ref.rule.startswith("ours within the reported range")
    assert lb.row("oracle").references == {} and "ndcg@20" not in lb.row("bpr").references

    files = render(lb, trust)
    readme = files["README.md"]
    table = {(c[0], c[1]): c for c in cells(readme, "Reproduction")}
    assert table["bpr", "ndcg@10"][2:6] == [f"{bpr.mean:.4f} ± {bpr.std:.4f}", f"{near:.4f}",
                                            f"{100 * (bpr.mean - near) / near:+.1f}%", "reproduced"]
    assert table["bpr", "recall@10"][5] == "deviates" and table["oracle", "ndcg@10"][3:6] == ["-", "-", "no reference"]
    assert table["bpr", "ndcg@10"][7] == "paper, Table 2"
    assert ("- `paper`: A. Author. 2023. A paper <https://example.org/paper>. Split: random 8:1:1; selection: "
            "valid recall@20.") in readme.split("## Reproduction", 1)[1]
    results = readme.split("\n\n", 3)[3]  # the results table follows the head
    row = next(line for line in results.splitlines() if line.startswith("| ") and "| bpr " in line)
    ndcg, recall_cell = [c.strip() for c in row.strip("|").split("|")][2:4]  # main metric first
    assert f"{bpr.mean:.4f} ± {bpr.std:.4f}" in ndcg and ndcg.endswith(" ✓") and recall_cell.endswith(" ≠")
    assert '<section id="reproduction">' in files["index.html"] and 'class="ref"' in files["index.html"]
    rows = {r["model"]: r for r in json.loads(files["leaderboard.json"])["rows"]}
    assert rows["bpr"]["reproduction"]["recall@10"]["status"] == "deviates"
    assert rows["bpr"]["reproduction"]["recall@10"]["references"][0]["value"] == 0.9
    assert rows["oracle"]["reproduction"]["ndcg@10"] == {"status": "no reference", "references": []}
    (tmp_path / "again").mkdir()  # a value 3 std away deviates
    publish(trust_root, tmp_path / "again", monkeypatch, [("bpr", "ndcg@10", far)])
    assert lbm.build(trust, trust.results_dir()).row("bpr").references["ndcg@10"][0].status == "deviates"


def test_a_parity_run_with_the_rows_params_is_a_reference(trust):  # noqa: F811
    lb = lbm.build(trust, trust.results_dir())
    row = lb.row("bpr")
    ours = row.test["ndcg@10"]
    rec = record(model="bpr", peer="recbole")
    rec["dataset"]["fingerprint"], rec["params"] = lb.dataset["fingerprint"], row.params
    theirs = [0.20, 0.21, 0.19]  # record()'s peer values
    (trust.folder / "parity").mkdir()
    (trust.folder / "parity" / "bpr-recbole.json").write_text(json.dumps(rec), encoding="utf-8")
    other = dict(rec, model="pop")  # made with other params than the pop row's: no reference
    (trust.folder / "parity" / "pop-recbole.json").write_text(json.dumps(other), encoding="utf-8")
    lb = lbm.build(trust, trust.results_dir())
    (ref,) = lb.row("bpr").references["ndcg@10"]
    va, vb = ours.std ** 2 / ours.n, 0.01 ** 2 / 3
    t = (ours.mean - 0.2) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (ours.n - 1) + vb ** 2 / 2)
    p = 2 * stats.t.sf(abs(t), df)
    assert ref.kind == "parity" and ref.value == pytest.approx(sum(theirs) / 3)
    assert ref.gap == pytest.approx((ours.mean - 0.2) / 0.2, rel=1e-6)
    assert ref.status == ("reproduced" if p >= 0.05 else "deviates") and f"p = {p:.4f}" in ref.rule
    assert lb.row("pop").references == {}


def test_a_suite_with_its_own_split_does_not_compare_the_cards_results(trust_root, tmp_path, monkeypatch):  # noqa: F811
    publish(trust_root, tmp_path, monkeypatch, [("bpr", "ndcg@10", 0.3)])
    monkeypatch.setenv("MMBENCH_HOME", str(trust_root / "home"))
    suite = write_suite(tmp_path / "suite", dataset='[split]\nmethod = "random_ratio"\nratios = [0.7, 0.1, 0.2]\nseed = 1')
    lb = lbm.build(suite, suite.results_dir())
    assert "this suite sets others, so they are not compared" in lb.references_note
    assert json.loads(render(lb, suite)["leaderboard.json"])["references_note"] == lb.references_note
