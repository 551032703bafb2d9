"""Thread policy: passive OpenMP waiting and a fitting thread count unless the user chose."""
import json
import os
import subprocess
import sys

import pytest

from mmbench import threads as T

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
    cores = str(T.usable_cores())
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


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "200000 100000\n"}, 2),          # cgroup v2: docker --cpus=2
    ({"cpu.max": "150000 100000\n"}, 2),          # 1.5 cores: two threads, not one
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu.max": "max 100000\n"}, None),          # no quota
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu.max": "garbage\n"}, None),
    ({}, None),                                   # no cgroup files at all
])
def test_cgroup_cpu_quota_in_whole_cores(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert T.cgroup_cpu_limit(str(tmp_path)) == expected


def test_usable_cores_are_the_affinity_capped_by_the_quota(monkeypatch):
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(T, "cgroup_cpu_limit", lambda: 1)
    assert T.usable_cores() == 1
    monkeypatch.setattr(T, "cgroup_cpu_limit", lambda: affinity + 5)
    assert T.usable_cores() == affinity
    monkeypatch.setattr(T, "cgroup_cpu_limit", lambda: None)
    assert T.usable_cores() == affinity


# -- malloc keeps freed memory (score blocks reused, not page-faulted in anew; measured in bench/) ----
def _malloc(**env):
    e = {k: v for k, v in os.environ.items() if k != "MMBENCH_MALLOC" and not k.startswith("MALLOC_")}
    e.update(env)
    code = "import ctypes, mmbench; from mmbench.threads import malloc_state; print(malloc_state())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_malloc_keeps_freed_memory_unless_the_user_chose():
    assert _malloc() == "keeps freed memory (mmap threshold 32 MiB, trim threshold 1024 MiB)"
    assert _malloc(MMBENCH_MALLOC="default") == "default (the user's choice)"
    assert _malloc(MALLOC_TRIM_THRESHOLD_="131072") == "default (the user's choice)"  # glibc's own tuning wins


def test_records_say_how_malloc_treats_freed_memory(tmp_path):
    run_cli("run", "-m", "pop", "-d", "ml-100k", "--results", tmp_path)
    env = json.loads(next(tmp_path.rglob("seed0.json")).read_text())["env"]
    assert env["malloc"] == T.malloc_state() and env["malloc"].startswith(("keeps freed memory", "default"))
