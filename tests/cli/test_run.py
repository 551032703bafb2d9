"""``mmbench run``: a protocol's knobs (masking, metrics, main metric) recorded and scored; the
test-time modality drop options and what ``models info`` says about cold items (bad input: one
clear line, before anything is prepared)."""
import json

import numpy as np
import pytest

from ..conftest import run_cli


@pytest.mark.parametrize("args,match", [
    (["--drop-share", "0,1"], "--drop-share needs --drop-modality"),
    (["--drop-modality", "text", "--drop-share", "0,x"], "--drop-share '0,x' is not a comma-separated list"),
    (["--drop-modality", "text", "--drop-share", "0,2"], r"robustness shares must be distinct numbers in [0, 1]"),
    (["--drop-modality", "text", "--drop-modality", "text"], "robustness keys must be distinct"),
])
def test_bad_drop_options(args, match, session_home, tmp_path):
    out = run_cli("run", "-m", "vbpr", "-d", "ml-100k", *args, env={"MMBENCH_HOME": str(session_home)},
                  check=False, cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and match in lines[0], out.stderr
    assert not (tmp_path / "results").exists()


def test_models_info_says_how_cold_items_are_ranked(session_home):
    env = {"MMBENCH_HOME": str(session_home)}
    pop = run_cli("models", "info", "pop", env=env).stdout
    assert "cold items: cannot score an item without training interactions" in pop
    assert "popularity 0 for Pop (below every warm item, ties by item index)" in pop
    assert "cold items: scored from its item content" in run_cli("models", "info", "vbpr", env=env).stdout


def _pop_hit_at(ds, k: int, mask_valid: bool) -> float:
    """Pop's hit@k on test by hand: train counts, ties by item index, train (and valid) items never ranked."""
    _, ti, _ = ds.pairs("train")
    counts = np.bincount(ti, minlength=ds.n_items)
    order = np.lexsort((np.arange(ds.n_items), -counts))
    seen = {}
    for part in ("train", "valid") if mask_valid else ("train",):
        u, i, _ = ds.pairs(part)
        for a, b in zip(u.tolist(), i.tolist()):
            seen.setdefault(a, set()).add(b)
    test = {}
    for a, b in zip(*[x.tolist() for x in ds.pairs("test")[:2]]):
        test.setdefault(a, set()).add(b)
    hits = []
    for user, relevant in test.items():
        top = [int(x) for x in order if x not in seen.get(user, ())][:k]
        hits.append(bool(relevant & set(top)))
    return float(np.mean(hits))


def test_run_takes_the_protocol_knobs_and_records_them(tmp_path, ml100k, session_home):
    env = {"MMBENCH_HOME": str(session_home)}
    res = tmp_path / "res"
    base = ("run", "-m", "pop", "-d", "ml-100k", "--results", res)
    run_cli(*base, "--suite", "mmrec-like", "--metric", "hit@20", "--main-metric", "recall@20",
            "--no-mask-valid-at-test", env=env)
    run_cli(*base, "--suite", "default", env=env)
    (loose,) = (res / "mmrec-like").rglob("seed0.json")
    (strict,) = (res / "default").rglob("seed0.json")
    loose, strict = json.loads(loose.read_text()), json.loads(strict.read_text())
    assert loose["protocol"]["mask_valid_at_test"] is False and strict["protocol"]["mask_valid_at_test"] is True
    assert loose["protocol"]["main_metric"] == "recall@20" and loose["protocol"]["metrics"] == ["hit@20", "recall@20"]
    assert strict["protocol"]["main_metric"] == "ndcg@10"
    assert np.isclose(loose["metrics"]["test"]["hit@20"], _pop_hit_at(ml100k, 20, mask_valid=False))
    assert np.isclose(strict["metrics"]["test"]["hit@20"], _pop_hit_at(ml100k, 20, mask_valid=True))
    assert loose["metrics"]["test"]["hit@20"] != strict["metrics"]["test"]["hit@20"]
    # the same job under another protocol: one clear line, never the other protocol's record taken as this run
    out = run_cli(*base, "--suite", "default", "--main-metric", "recall@20", env=env, check=False)
    assert out.returncode != 0 and "another protocol" in out.stderr and len(out.stderr.strip().splitlines()) == 1
