"""Tiny datasets made inside the tests (no downloads)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_inter(path: Path, rows, *, header="user_id:token\titem_id:token\trating:float\ttimestamp:float") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + ["\t".join(str(x) for x in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_card(folder: Path, name: str, data_dir: Path, *, split='method = "random_ratio"\nratios = [0.8, 0.1, 0.1]\nseed = 1',
               filters="", extra="", fmt="recbole", inter_file=None) -> Path:
    card = folder / f"{name}.toml"
    card.write_text(f'''[dataset]
name = "{name}"
version = "1"
title = "test data {name}"
license = "test"
format = "{fmt}"
modalities = ["interactions"]

[[sources]]
name = "local"
path = "{data_dir.as_posix()}"

[files]
interactions = "{inter_file or name + '.inter'}"

[filters]
{filters}

[split]
{split}
{extra}
''', encoding="utf-8")
    return card


def planted_rows(n_users=60, n_items=40, per_user=12, seed=0, dim=4):
    """Interactions drawn from planted latent factors: users prefer items with aligned factors."""
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_users, dim))
    V = rng.normal(size=(n_items, dim))
    bu, bi = rng.normal(scale=0.8, size=n_users), rng.normal(scale=0.8, size=n_items)
    rows = []
    for u in range(n_users):
        s = U[u] @ V.T
        top = np.argsort(-s)[: per_user * 2]
        chosen = rng.choice(top, size=per_user, replace=False)
        scale = s[top].std() + 1e-9
        for t, i in enumerate(chosen):
            # ratings: user and item biases plus the latent affinity (biased MF can learn them)
            rating = float(np.clip(np.round(3 + bu[u] + bi[i] + 0.5 * (s[i] - s[top].mean()) / scale), 1, 5))
            rows.append((f"u{u}", f"i{i}", rating, 1000 + t))
    return rows


def fail_os_call(monkeypatch, call: str, code: int) -> None:
    """Make ``os.<call>`` fail as the kernel would, with errno ``code``, its text and the file it
    names: ``open`` (only of a ``.tmp`` file: the temp beside a target), ``fsync``, ``replace``
    or ``mkdir``. Tests run as root, where chmod cannot provoke EACCES, nor a mount EROFS."""
    real = getattr(os, call)

    def err(name=None):
        return OSError(code, os.strerror(code), *([name] if name is not None else []))

    if call == "open":  # creating the temp file beside the target (other opens pass)
        def fake(path, *a, **k):
            if str(path).endswith(".tmp"):
                raise err(path)
            return real(path, *a, **k)
    elif call == "fsync":  # writing it out (a full disk or quota shows here)
        def fake(fd):
            raise err()
    elif call == "replace":  # renaming it over the target
        def fake(src, dst, **k):
            raise OSError(code, os.strerror(code), src, None, dst)
    else:  # "mkdir": creating the target's folder
        def fake(path, *a, **k):
            raise err(path)
    monkeypatch.setattr(os, call, fake)


# ranx is the tests' reference and the library behind rank fusion; its numba kernels cost 46 s
# (metrics) and 38 s (fusion) of compiling on a clean clone, where numba's cache never hits a
# fresh venv. The tests run it interpreted in a child process; =1: compiled, as users run it.
RANX_COMPILED = os.environ.get("MMBENCH_TEST_RANX_JIT") == "1"


def interpreted_ranx_env() -> dict:
    """The environment of a child Python that runs ranx with numba's JIT off (this process's,
    without pytest's own variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["NUMBA_DISABLE_JIT"] = "1"
    return env


_RANX_SCRIPT = """
import json, sys
import ranx
a = json.load(sys.stdin)
q, r = ranx.Qrels(a["qrels"]), ranx.Run(a["run"])
out = {m: [float(x) for x in ranx.evaluate(q, r, m, return_mean=False)] for m in a["metrics"]}
json.dump(out, sys.stdout)
"""


def ranx_evaluate(qrels: dict, run: dict, metrics) -> dict[str, np.ndarray]:
    """ranx's per-query values of ``metrics`` (e.g. "ndcg@10"), in ranx's order of the queries.

    Runs in a child process with numba's JIT off (see ``RANX_COMPILED``): the same ranx code,
    interpreted, in about 2 s with the start, against 46 s of compiling on a clean clone.
    """
    import json
    import subprocess
    import sys

    env = dict(os.environ) if RANX_COMPILED else interpreted_ranx_env()
    done = subprocess.run([sys.executable, "-c", _RANX_SCRIPT], input=json.dumps(
        {"qrels": qrels, "run": run, "metrics": list(metrics)}), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return {m: np.asarray(v, dtype=np.float64) for m, v in json.loads(done.stdout).items()}
