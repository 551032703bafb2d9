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
    assert rec["fit"]["resumed_from"] >= 1 and rec["fit"]["resumed_s"] > 0  # the killed process's training
    assert rec["timing"]["fit_s"] > rec["fit"]["resumed_s"]  # counted in the record's fit time
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


def test_four_processes_share_one_results_dir(tmp_path, toy_env):
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
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
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


# ----------------------------------------------------------------------------- faults and concurrency on names
def _one_error_line(proc) -> str:
    """The one ``error:`` line (a file model is also announced by one ``warning:`` line)."""
    assert proc.returncode not in (0, None), proc.stdout
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    return lines[0]


def test_plugin_exit_is_a_failed_record_and_an_error(tmp_path, toy_env):
    """A model that calls sys.exit(0) while fitting does not end mmbench with 0 and no record."""
    plugin = tmp_path / "quits.py"
    plugin.write_text("import sys\nfrom mmbench_baselines.pop import Pop\n\n"
                      "class Quits(Pop):\n    def fit(self, *a, **k):\n        sys.exit(0)\n")
    res = tmp_path / "res"
    p = subprocess.run(_cmd("run", "-m", f"{plugin}:Quits", "-d", "toy", "--device", "cpu", "--results", res),
                       env=toy_env, capture_output=True, text=True)
    assert "quits:Quits failed: SystemExit: 0" in _one_error_line(p)
    rec = read_record(next(res.rglob("seed0.json")))
    assert rec["status"] == "failed" and rec["error"] == "SystemExit: 0"


def test_full_disk_during_prepare_is_one_line_and_leaves_no_staging(tmp_path, toy_env):
    """Writes fail past 16 KiB (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC): one line naming the
    file, no prepared dataset, no staging folder; with room again the same command succeeds."""
    import resource

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    p = subprocess.run(_cmd("prepare", "toy"), env=toy_env, capture_output=True, text=True, preexec_fn=small_disk)
    assert "cannot write: File too large" in _one_error_line(p)
    home = tmp_path / "home"
    assert not list(home.rglob("*.incomplete")) and not list(home.rglob("manifest.json"))
    subprocess.run(_cmd("prepare", "toy"), env=toy_env, check=True, capture_output=True)
    assert len(list(home.rglob("manifest.json"))) == 1


def _import_folder(tmp_path, k: int):
    """A small MMRec folder whose user count (3 + k) says which folder a dataset came from."""
    d = tmp_path / f"src{k}"
    d.mkdir()
    rows = [f"{u}\t{i}\t1\t{0 if i < 2 else 2}" for u in range(3 + k) for i in range(3)]
    (d / "m.inter").write_text("userID\titemID\trating\tx_label\n" + "\n".join(rows) + "\n")
    return d


def test_concurrent_imports_of_one_name_never_mix(tmp_path, toy_env):
    """Four processes import four folders under one name (--force), some killed at random points:
    each that reports success reported its own folder; the survivors end 0; afterwards the card,
    its folder and the prepared data agree, and nothing staged is left."""
    import random

    rnd = random.Random(7)
    env = dict(toy_env, OMP_NUM_THREADS="1")
    folders = [_import_folder(tmp_path, k) for k in range(4)]
    for round_ in range(2):
        procs = [subprocess.Popen(_cmd("import", "--format", "mmrec", d, "--name", "same", "--force"), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in folders]
        killed = set(rnd.sample(range(4), 2)) if round_ == 0 else set()
        for k in sorted(killed):
            time.sleep(rnd.uniform(0.2, 1.5))
            procs[k].send_signal(signal.SIGKILL)
        for k, p in enumerate(procs):
            out, err = p.communicate(timeout=300)
            if k in killed:
                continue
            assert p.returncode == 0 and not err.strip(), err[-2000:]
            assert f"imported same: {3 + k} users" in out, out  # its own folder, not another's
    card = (tmp_path / "home" / "cards" / "same.toml").read_text()
    k = next(k for k, d in enumerate(folders) if json.dumps(str(d.resolve())) in card)
    p = subprocess.run(_cmd("datasets", "info", "same"), env=env, capture_output=True, text=True, check=True)
    assert f"stats:      {3 + k} users" in p.stdout, p.stdout
    left = [q for q in (tmp_path / "home").rglob("*") if q.name.endswith((".incomplete", ".tmp"))]
    assert not left, left


def test_concurrent_prepare_and_runs_with_kill_points(tmp_path, toy_env):
    """Three processes prepare and run one model into one results folder while others are killed at
    random points; then one more run: every record complete and valid, one per seed, no staging."""
    import random

    rnd = random.Random(11)
    env = dict(toy_env, OMP_NUM_THREADS="1")
    res = tmp_path / "res"
    run = ("run", "-m", "pop", "-d", "toy", "--device", "cpu", "--seed", "0", "--seed", "1", "--results", res)
    procs = [subprocess.Popen(_cmd(*run), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(5)]
    for k in (0, 2):
        time.sleep(rnd.uniform(0.3, 2.0))
        procs[k].send_signal(signal.SIGKILL)
    for k, p in enumerate(procs):
        out, err = p.communicate(timeout=300)
        if k not in (0, 2):
            assert p.returncode == 0 and "Traceback" not in err, err[-2000:]
    final = subprocess.run(_cmd(*run), env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    recs = sorted(res.rglob("seed*.json"))
    assert [p.name for p in recs] == ["seed0.json", "seed1.json"]
    assert all(read_record(p)["status"] == "ok" for p in recs)
    home = tmp_path / "home"
    assert len(list(home.rglob("manifest.json"))) == 1
    assert not [q for q in [*home.rglob("*"), *res.rglob("*")] if q.name.endswith((".incomplete", ".tmp"))]
