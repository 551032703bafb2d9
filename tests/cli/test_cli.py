"""End to end through the real console command, on the embedded ml-100k with few epochs."""
import json
import re

import pytest

from ..conftest import ROOT, run_cli


@pytest.fixture
def env(session_home):
    return {"MMBENCH_HOME": str(session_home)}


def _suite(tmp_path, body_models, seeds="[0, 1]", extra=""):
    d = tmp_path / "suite"
    d.mkdir(exist_ok=True)
    fp = (ROOT / "leaderboards/ml100k-quick/suite.toml").read_text().split('fingerprint = "')[1].split('"')[0]
    (d / "suite.toml").write_text(f'''[suite]
name = "t-suite"
version = 1

[dataset]
name = "ml-100k"
version = "1"
fingerprint = "{fp}"
{extra}
[run]
seeds = {seeds}
device = "cpu"

{body_models}
''')
    return d


MODELS = '''[[models]]
name = "pop"

[[models]]
name = "bpr"
params = { epochs = 3, embedding_dim = 16 }
'''


@pytest.mark.slow
def test_run_records_skip_and_cross_process_determinism(tmp_path, env, ml100k):
    res = tmp_path / "res"
    out = run_cli("run", "-m", "bpr", "-d", "ml-100k", "--seed", "0", "--seed", "1", "-p", "epochs=3",
                  "-p", "embedding_dim=16", "--device", "cpu", "--results", res, env=env)
    assert out.stdout.count(": done") == 2
    recs = sorted(res.rglob("seed*.json"))
    assert [p.name for p in recs] == ["seed0.json", "seed1.json"]
    r0 = json.loads(recs[0].read_text())
    assert r0["schema"] == "mmbench.run/1" and r0["status"] == "ok"
    assert r0["dataset"]["fingerprint"] == ml100k.fingerprint
    assert r0["model"]["params"]["epochs"] == 3 and r0["model"]["distribution"] == "mmbench"
    assert r0["protocol"]["mask_valid_at_test"] is True and r0["env"]["torch"]
    assert set(r0["metrics"]["test"]) >= {"recall@10", "ndcg@20", "map@20", "mrr@10", "precision@10", "hit@20"}
    assert (recs[0].parent / "seed0.per_user.npz").is_file()
    # rerun: skipped, nothing rewritten
    mtime = recs[0].stat().st_mtime_ns
    out = run_cli("run", "-m", "bpr", "-d", "ml-100k", "--seed", "0", "-p", "epochs=3", "-p", "embedding_dim=16",
                  "--device", "cpu", "--results", res, env=env)
    assert ": skipped" in out.stdout and recs[0].stat().st_mtime_ns == mtime
    # forced rerun in a fresh process: identical metrics
    run_cli("run", "-m", "bpr", "-d", "ml-100k", "--seed", "0", "-p", "epochs=3", "-p", "embedding_dim=16",
            "--device", "cpu", "--results", res, "--force", env=env)
    again = json.loads(recs[0].read_text())
    assert again["metrics"] == r0["metrics"]
    assert again["fit"]["history"] == r0["fit"]["history"]


@pytest.mark.slow
def test_suite_run_status_and_leaderboard_bytes(tmp_path, env, ml100k):
    d = _suite(tmp_path, MODELS)
    res = tmp_path / "res"
    st = run_cli("suite", "status", d, "--results", res, env=env)
    assert "missing=4" in st.stdout
    out = run_cli("suite", "run", d, "--results", res, env=env)
    assert "done=4" in out.stdout
    out = run_cli("suite", "run", d, "--results", res, env=env)
    assert "skipped=4" in out.stdout
    run_cli("leaderboard", "build", d, "--results", res, env=env)
    first = {p.name: p.read_bytes() for p in (d / "v1").iterdir()}
    assert set(first) == {"README.md", "leaderboard.csv", "leaderboard.json", "index.html"}
    run_cli("leaderboard", "build", d, "--results", res, env=env)
    assert first == {p.name: p.read_bytes() for p in (d / "v1").iterdir()}
    lb = json.loads(first["leaderboard.json"])
    assert [r["model"] for r in lb["rows"]][0] in ("bpr", "pop") and len(lb["rows"]) == 2
    assert all(r["seeds"] == [0, 1] for r in lb["rows"])
    md = first["README.md"].decode()
    results_table = md.split("\n## ")[0]
    assert results_table.count("\n| ") == 3 and "| Rank" in md and "± " in md
    # a record with a different protocol is rejected, never averaged
    rec = next(res.rglob("bpr/*/seed1.json"))
    data = json.loads(rec.read_text())
    data["protocol_hash"] = "0" * 16
    rec.write_text(json.dumps(data))
    run_cli("leaderboard", "build", d, "--results", res, env=env)
    lb = json.loads((d / "v1" / "leaderboard.json").read_text())
    assert any("protocol" in r["reason"] for r in lb["rejected"])
    assert next(r for r in lb["rows"] if r["model"] == "bpr")["seeds"] == [0]


def test_models_info_states_modalities_and_defaults(env):
    out = run_cli("models", "info", "freedom", env=env).stdout
    assert "paper: Zhou & Shen, ACM MM 2023" in out
    assert "modalities: requires any of text, image, audio, video" in out
    rows = {line.split()[0]: line for line in out.split("parameters:\n")[1].split("\n\n")[0].splitlines()}
    assert re.fullmatch(r"  knn_k\s+= 10\s+int >= 1\s+neighbours per item.*", rows["knn_k"])
    assert re.fullmatch(r"  feat_dim\s+= None\s+int >= 1 or None\s+size of the projected features.*", rows["feat_dim"])
    assert re.fullmatch(r"  image_weight\s+= 0.1\s+float >= 0 and <= 1\s+.*", rows["image_weight"])
    assert list(rows)[-5:] == ["lr", "batch_size", "epochs", "patience", "eval_every"]  # the loop's, last
    assert "FREEDOM (Zhou & Shen" in out  # the docstring
    assert "modalities: none (interactions only)" in run_cli("models", "info", "bpr", env=env).stdout


@pytest.mark.parametrize("args,match", [
    (["run", "-m", "bprr", "-d", "ml-100k"], "unknown model 'bprr'; did you mean 'bpr'"),
    (["run", "-m", "bpr", "-d", "ml-10k"], "unknown dataset 'ml-10k'"),
    (["run", "-m", "bpr", "-d", "ml-100k", "-p", "embeding_dim=3"], "has no parameter(s) ['embeding_dim']"),
    (["prepare", "nope"], "unknown dataset 'nope'"),
    (["models", "info", "freedomm"], "unknown model 'freedomm'; did you mean 'freedom'"),
    (["leaderboard", "build", "no/such/suite"], "no/such/suite: file not found"),
])
def test_bad_input_one_clear_line(args, match, env, tmp_path):
    out = run_cli(*args, env=env, check=False, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], out.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.replace("[run]", "[run]\nworkers = 3"), "unknown key 'run.workers'"),
    (lambda s: s.replace('name = "pop"', 'name = "popp"'), "unknown model 'popp'"),
    (lambda s: s.replace("seeds = [0, 1]", 'seeds = "0"'), "'run.seeds' must be list of int"),
    (lambda s: s.replace("version = 1\n", "", 1), "missing required key 'suite.version'"),
    (lambda s: s.replace("epochs = 3", "epochz = 3"), "no parameter(s) ['epochz']"),
])
def test_malformed_suite(tmp_path, env, edit, match):
    d = _suite(tmp_path, MODELS)
    p = d / "suite.toml"
    p.write_text(edit(p.read_text()))
    out = run_cli("suite", "run", d, "--results", tmp_path / "res", env=env, check=False)
    assert out.returncode == 2 and match in out.stderr and "suite.toml" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()
