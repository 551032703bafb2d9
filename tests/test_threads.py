"""Thread policy: passive OpenMP waiting and a fitting thread count unless the user chose."""
import json
import os
import subprocess
import sys

from .conftest import run_cli

PROBE = ("import os, mmbench, torch; from mmbench.threads import configure; n = configure({arg}); "
         "print(os.environ.get('OMP_WAIT_POLICY'), n, torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])")


def _probe(arg="None", **env):
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MMBENCH_THREADS")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE.format(arg=arg)], capture_output=True, text=True, env=e)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_passive_waiting_and_usable_cores_unless_the_user_chose():
    cores = str(len(os.sched_getaffinity(0)))
    assert _probe() == ["PASSIVE", cores, cores, cores]
    assert _probe(OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1") == ["ACTIVE", "1", "1", "1"]
    assert _probe("3", OMP_NUM_THREADS="1") == ["PASSIVE", "3", "3", "3"]  # an explicit count wins


def test_records_say_how_many_threads_and_which_wait_policy(tmp_path):
    run_cli("--threads", "1", "run", "-m", "pop", "-d", "ml-100k", "--results", tmp_path / "a")
    env = json.loads(next((tmp_path / "a").rglob("seed0.json")).read_text())["env"]
    assert (env["threads"], env["omp_wait_policy"]) == (1, "PASSIVE")
    run_cli("run", "-m", "pop", "-d", "ml-100k", "--results", tmp_path / "b",
            env={"MMBENCH_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"})
    env = json.loads(next((tmp_path / "b").rglob("seed0.json")).read_text())["env"]
    assert (env["threads"], env["omp_wait_policy"]) == (2, "ACTIVE")
    bad = run_cli("--threads", "0", "run", "-m", "pop", "-d", "ml-100k", check=False)
    assert bad.returncode != 0 and "--threads" in bad.stderr
