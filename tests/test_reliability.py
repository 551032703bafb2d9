"""Crash safety, resume and concurrency, with real subprocesses and SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mmbench.records import read_record

from .conftest import ROOT
from .helpers import planted_rows, write_card, write_inter

pytestmark = pytest.mark.slow


@pytest.fixture
def toy_env(tmp_path):
    data = tmp_path / "data"
    write_inter(data / "toy.inter", planted_rows(n_users=300, n_items=200, per_user=25, seed=1))
    cards = tmp_path / "cards"
    cards.mkdir()
    write_card(cards, "toy", data)
    env = dict(os.environ, MMBENCH_HOME=str(tmp_path / "home"), MMBENCH_CARDS=str(cards), PYTHONPATH=str(ROOT))
    return env


def _cmd(*args):
    return [sys.executable, "-m", "mmbench", *map(str, args)]


BPR = ["-m", "bpr", "-d", "toy", "--seed", "0", "--device", "cpu", "-p", "epochs=40", "-p", "patience=100",
       "-p", "embedding_dim=32", "-p", "batch_size=256"]


def test_resume_after_sigkill_gives_identical_metrics(tmp_path, toy_env):
    ref = tmp_path / "ref"
    subprocess.run(_cmd("run", *BPR, "--results", ref), env=toy_env, check=True, capture_output=True)
    ref_rec = read_record(next(ref.rglob("seed0.json")))

    res = tmp_path / "res"
    proc = subprocess.Popen(_cmd("run", *BPR, "--results", res), env=toy_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ckpt = None
    while time.time() < deadline and proc.poll() is None:
        found = list(res.rglob("seed0.ckpt"))
        if found:
            ckpt = found[0]
            time.sleep(0.3)  # let a few more epochs pass
            break
        time.sleep(0.02)
    assert ckpt is not None and proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(res.rglob("seed0.json")), "a killed run must not leave a record"
    out = subprocess.run(_cmd("run", *BPR, "--results", res, "--resume"), env=toy_env, check=True,
                         capture_output=True, text=True)
    rec = read_record(next(res.rglob("seed0.json")))
    assert rec["metrics"] == ref_rec["metrics"]
    assert rec["fit"]["history"] == ref_rec["fit"]["history"]
    assert not list(res.rglob("*.ckpt")), "the checkpoint is removed once the record is written"
    assert "done" in out.stdout


def test_sigkill_at_any_point_leaves_nothing_corrupt(tmp_path, toy_env):
    res = tmp_path / "res"
    for delay in (0.3, 0.8, 1.5, 2.5, 4.0):
        proc = subprocess.Popen(_cmd("run", *BPR, "--results", res, "--seed", "1"), env=toy_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in res.rglob("seed*.json"):
            read_record(p)  # any record present is complete and valid
        for p in (tmp_path / "home").rglob("manifest.json"):
            json.loads(p.read_text())
    out = subprocess.run(_cmd("run", *BPR, "--results", res, "--seed", "1"), env=toy_env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    recs = sorted(res.rglob("seed*.json"))
    assert [p.name for p in recs] == ["seed0.json", "seed1.json"]
    assert all(read_record(p)["status"] == "ok" for p in recs)


def test_eight_processes_share_one_results_dir(tmp_path, toy_env):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.toml").write_text('''[suite]
name = "conc"
version = 1

[dataset]
name = "toy"
version = "1"

[run]
seeds = [0, 1, 2]
device = "cpu"

[[models]]
name = "pop"

[[models]]
name = "bpr"
params = { epochs = 3, embedding_dim = 8, batch_size = 512 }
''')
    res = tmp_path / "res"
    env = dict(toy_env, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(_cmd("suite", "run", suite, "--results", res), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    done = sum(int(o[0].strip().splitlines()[-1].split("done=")[1].split()[0]) for o in outs)
    assert done == 6, [o[0].splitlines()[-1] for o in outs]  # every job computed exactly once
    recs = sorted(res.rglob("seed*.json"))
    assert len(recs) == 6 and all(read_record(p)["status"] == "ok" for p in recs)
    assert not [p for p in res.rglob("*") if p.name.endswith(".tmp")]
    # afterwards every process agrees that nothing is missing
    st = subprocess.run(_cmd("suite", "status", suite, "--results", res), env=env, capture_output=True, text=True)
    assert st.stdout.strip().splitlines()[-1] == "done=6"
