"""``mmbench parity`` end to end on ml-100k: popularity has one right answer, so Cornac's
MostPop and our pop must score the same on every metric (the adapter's plumbing: split,
id maps, evaluator); a model a peer lacks is refused naming who has it."""
import json

import pytest

from ..conftest import run_cli

pytest.importorskip("cornac")


@pytest.mark.slow
def test_pop_against_cornac_mostpop_is_identical(ml100k, tmp_path):
    out = tmp_path / "pop-cornac.json"
    proc = run_cli("--threads", "1", "parity", "-m", "pop", "-d", "ml-100k", "--peer", "cornac", "--seed", "0",
                   "--seed", "1", "--out", out)
    rec = json.loads(out.read_text())
    assert rec["schema"] == "mmbench.parity/1" and rec["dataset"]["fingerprint"] == ml100k.fingerprint
    assert rec["peer"]["name"] == "cornac" and rec["mapping"]["peer_model"] == "MostPop" and rec["seeds"] == [0, 1]
    for side in ("ours", "theirs"):
        assert [r["seed"] for r in rec[side]] == [0, 1]
    assert rec["ours"][0]["metrics"] == rec["theirs"][0]["metrics"]
    c = rec["comparison"]["ndcg@10"]
    assert c["gap"] == 0.0 and c["p"] == 1.0 and c["within_noise"] is True
    assert "| ndcg@10 " in proc.stdout and f"-> {out}" in proc.stdout


def test_a_model_the_peer_lacks_is_refused_naming_who_has_it(tmp_path):
    proc = run_cli("parity", "-m", "bpr", "-d", "ml-100k", "--peer", "cornac", check=False)
    assert proc.returncode != 0
    assert "cornac has no implementation of 'bpr'" in proc.stderr and "covered by recbole" in proc.stderr
