"""Backends: results in job order, workers x threads <= cores, errors surface, and a suite
run in a process pool or on Ray writes the same records as the sequential run."""
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from mmbench import backends as B
from mmbench.errors import ConfigError
from mmbench.records import read_per_user, read_record
from mmbench.suite import backend_runner

from .helpers import planted_rows, write_card, write_inter


def _square(x):
    return x * x


def _threads(_):
    return int(os.environ.get("OMP_NUM_THREADS", "0")), os.getpid()


def _nice(_):
    return os.nice(0)


def _boom(x):
    raise ValueError(f"job {x} failed")


def test_results_come_back_in_job_order_in_process():
    seen = []
    out = B.execute([partial(_square, i) for i in range(5)], workers=1, on_result=lambda i, r: seen.append((i, r)))
    assert out == [0, 1, 4, 9, 16]
    assert seen == [(i, i * i) for i in range(5)]


def test_pool_size_never_oversubscribes(monkeypatch):
    for n_cores in (1, 2, 3, 8, 16):
        monkeypatch.setattr(B, "usable_cores", lambda n=n_cores: n)
        for workers in (None, 1, 2, 5, 64):
            w, t = B.pool_size(100, workers)
            assert 1 <= w <= n_cores and w * t <= n_cores and t >= 1, (n_cores, workers, w, t)
        assert B.pool_size(3, None)[0] <= 3  # never more workers than jobs
        assert B.pool_size(100, None, "cuda")[0] == 1  # jobs share the GPU unless told otherwise
    monkeypatch.setattr(B, "usable_cores", lambda: 16)
    assert B.pool_size(100, None) == (16, 1)  # one single-threaded worker per core
    assert B.pool_size(100, 4) == (4, 4)
    with pytest.raises(ConfigError, match="workers"):
        B.pool_size(3, 0)


def test_process_pool_runs_jobs_in_workers_with_bounded_threads():
    if B.usable_cores() < 2:
        pytest.skip("one core: the pool would be a single in-process worker")
    out = B.execute([partial(_threads, i) for i in range(4)], workers=2)
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert all(t * 2 <= B.usable_cores() for t, _ in out)
    assert B.execute([partial(_square, i) for i in range(6)], workers=2) == [0, 1, 4, 9, 16, 25]


def test_a_failing_job_raises_here():
    with pytest.raises(ValueError, match="job 1 failed"):
        B.execute([partial(_square, 0), partial(_boom, 1), partial(_square, 2)], workers=1)


def test_bad_backend_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown backend 'dask'"):
        B.execute([partial(_square, 1)], backend="dask")
    with pytest.raises(ConfigError, match="only for the ray backend"):
        B.execute([partial(_square, 1)], address="10.0.0.1:6379")
    with pytest.raises(ConfigError, match="only for the ray backend"):
        backend_runner("local", address="10.0.0.1:6379")
    with pytest.raises(ConfigError, match="unknown backend"):
        backend_runner("slurm")


# -- suites: identical records --------------------------------------------------------------------
@pytest.fixture
def toy_suite(tmp_path, cards_dir):
    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=40, n_items=30, per_user=10, seed=2))
    write_card(cards_dir, "toy", tmp_path / "d")
    d = tmp_path / "suite"
    d.mkdir()
    (d / "suite.toml").write_text('''[suite]
name = "backend-test"
version = 1

[dataset]
name = "toy"
version = "1"

[protocol]
metrics = ["ndcg@10", "recall@10"]
main_metric = "ndcg@10"

[run]
seeds = [0, 1]
device = "cpu"

[[models]]
name = "pop"

[[models]]
name = "bpr"
params = { epochs = 4, embedding_dim = 8, batch_size = 64, patience = 10 }
''', encoding="utf-8")
    from mmbench.suite import load_suite

    return load_suite(d)


def _records(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("seed*.json")):
        rec = read_record(p)
        out[p.relative_to(root).as_posix()] = (rec["status"], rec["metrics"], rec["model"]["params_hash"],
                                              rec.get("fit", {}).get("history"), read_per_user(p))
    return out


def _assert_same(a: dict, b: dict):
    assert sorted(a) == sorted(b) and len(a) == 4, (sorted(a), sorted(b))
    for key in a:
        sa, ma, ha, hista, pa = a[key]
        sb, mb, hb, histb, pb = b[key]
        assert (sa, ma, ha, hista) == (sb, mb, hb, histb), key
        assert sorted(pa) == sorted(pb)
        for k in pa:
            assert np.array_equal(pa[k], pb[k]), (key, k)


def _run(suite, results, **kw):
    from mmbench.suite import run_suite

    counts = run_suite(suite, results=results, echo=lambda *_: None, **kw)
    assert counts["done"] == 4 and counts["failed"] == 0, counts
    return _records(results)


@pytest.mark.slow
def test_process_pool_writes_the_same_records_as_sequential(toy_suite, tmp_path):
    if B.usable_cores() < 2:
        pytest.skip("one core: no pool to compare")
    seq = _run(toy_suite, tmp_path / "seq", workers=1)
    pool = _run(toy_suite, tmp_path / "pool", workers=2)
    _assert_same(seq, pool)


@pytest.mark.slow
def test_ray_writes_the_same_records_as_sequential(toy_suite, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'mmbench[ray]')")
    import ray

    seq = _run(toy_suite, tmp_path / "seq", workers=1)
    try:
        on_ray = _run(toy_suite, tmp_path / "ray", backend="ray")
        # Ray's own default runs workers at niceness 15, starved on a busy machine
        assert B.execute([partial(_nice, 0)], backend="ray") == [os.nice(0)]
    finally:
        ray.shutdown()
    _assert_same(seq, on_ray)
