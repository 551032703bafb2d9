"""The board's Parity section (mmbench/leaderboard/parity.py): rendered from the suite's
parity records on a rules-2 board, absent without them, a record on another dataset rejected."""
import json

from mmbench import leaderboard as lbm
from mmbench.leaderboard.files import render

from ..leaderboard.conftest import trust, trust_root  # noqa: F401 - the small rules-2 board
from .test_report import record


def write_parity(suite, fingerprint, name="vbpr-cornac.json"):
    rec = record()
    rec["dataset"]["fingerprint"] = fingerprint
    (suite.folder / "parity").mkdir(exist_ok=True)
    (suite.folder / "parity" / name).write_text(json.dumps(rec), encoding="utf-8")


def test_no_parity_records_no_section(trust):  # noqa: F811
    files = render(lbm.build(trust, trust.results_dir()), trust)
    assert "Parity" not in files["README.md"] and 'id="parity"' not in files["index.html"]
    assert "parity" not in json.loads(files["leaderboard.json"])


def test_the_section_shows_each_record_on_its_main_metric(trust):  # noqa: F811
    fp = lbm.build(trust, trust.results_dir()).dataset["fingerprint"]
    write_parity(trust, fp)
    lb = lbm.build(trust, trust.results_dir())
    assert lb.rejected == [] and len(lb.parity) == 1
    files = render(lb, trust)
    readme = files["README.md"]
    assert "## Parity" in readme and "Welch's t-test over seeds" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| vbpr"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:8] == ["vbpr", "cornac 3.0.1 (VBPR)", "ndcg@10", "0.3000 ± 0.0100", "0.2000 ± 0.0100", "+50.0%",
                         cells[6], "no"] and cells[8] == "6 + 6"
    assert '<section id="parity">' in files["index.html"] and "<td class=\"text\">0.3000 ± 0.0100</td>" in files[
        "index.html"]
    (shown,) = json.loads(files["leaderboard.json"])["parity"]
    assert shown["gap"] == 0.5 and shown["within_noise"] is False and shown["peer_model"] == "VBPR"


def test_a_record_on_another_dataset_is_rejected_not_shown(trust):  # noqa: F811
    write_parity(trust, "0" * 64)
    lb = lbm.build(trust, trust.results_dir())
    assert lb.parity == []
    assert dict(lb.rejected)["parity/vbpr-cornac.json"].startswith("made on dataset fingerprint 000000000000")
    assert any("rejected parity/vbpr-cornac.json" in p for p in lbm.check(lb, trust))
