"""``mmbench`` on the command line, in a real process that did not pay for ``import torch``.

A CLI test runs ``python -m mmbench ...`` in a process of its own: its own exit status,
stdout, stderr, environment, working directory, module state and signals. Most of such a
process's start is ``import torch`` (1.3-1.5 s of CPU here, most of a short command), and the
suite starts about 80 of them. So each test process keeps one *fork server*: a Python process
that imported torch and the other heavy third-party libraries once, and forks a child per
command. The child sets the command's environment and working directory, then runs the console
entry point exactly as ``python -m mmbench`` does (``runpy``, ``sys.argv``); mmbench itself is
imported afresh in every child, so it reads its environment as a cold start does. The server
waits for the child and returns its exit status (negative: killed by that signal, as
``subprocess`` reports it).

What a pre-imported process cannot honour is what libraries read when they load: OpenMP's and
the allocator's environment, and the like. A command whose environment differs from the
server's in any of those (:data:`LOAD_TIME_VARS`) runs as a plain subprocess, and so does every
command when ``MMBENCH_TEST_FRESH_CLI=1`` (the whole suite passes both ways;
``tests/test_forkcli.py`` compares the two on the same commands). ``PYTHONPATH`` is applied to
``sys.path`` as the interpreter does at start. Tests of process start itself (import time, a
cold first run) call ``subprocess`` directly.

Requests and replies are one JSON line each on the server's stdin and stdout.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading

# Variables a library reads when it is loaded (or the interpreter when it starts): a command that
# sets them differently from the server's environment needs a process of its own.
LOAD_TIME_VARS = ("OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "MALLOC_", "GLIBC_TUNABLES", "LD_",
                  "PYTHON", "TORCH_", "PYTORCH_", "CUDA_", "NUMBA_", "MMBENCH_THREADS", "MMBENCH_MALLOC")
PRELOAD = ("torch", "numpy", "scipy.sparse", "filelock", "click", "tabulate")

_SERVER = r'''
import json, os, sys
for name in sys.argv[1].split(","):
    __import__(name)
import atexit, io, runpy, traceback
SERVER_PYTHONPATH = os.environ.get("PYTHONPATH")

def child(req):
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=False)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), errors="backslashreplace", line_buffering=True)
    sys.argv = ["mmbench", *req["args"]]
    # sys.path as `python -m` starts it: the working directory, PYTHONPATH, then the rest
    def entries(value):
        return [os.path.abspath(p) for p in (value or "").split(os.pathsep) if p]
    old = set(entries(SERVER_PYTHONPATH))
    sys.path[:] = [os.getcwd(), *entries(req["env"].get("PYTHONPATH"))] + [p for p in sys.path[1:] if p not in old]
    import importlib
    importlib.invalidate_caches()
    code = 0
    try:
        runpy.run_module("mmbench", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        import threading
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code & 0xFF)

for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            child(req)
        finally:
            os._exit(70)
    _, status = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    sys.stdout.write(json.dumps({"rc": rc}) + "\n")
    sys.stdout.flush()
'''


def _load_time_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(LOAD_TIME_VARS) and k != "PYTHONPATH"}


class ForkServer:
    """One per test process (started on first use, ended with the process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._env: dict | None = None

    def _start(self) -> None:
        self._env = dict(os.environ)
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVER, ",".join(PRELOAD)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=self._env, cwd=os.getcwd())

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()  # the server's loop ends
            self._proc.wait()

    def serves(self, env: dict) -> bool:
        """Can a child of the server honour ``env``? If this process's own environment has changed
        since the server started (a test ran Ray or set a thread count in-process), the server is
        started again from it; a command that sets load-time variables of its own runs apart."""
        if os.environ.get("MMBENCH_TEST_FRESH_CLI") == "1" or not hasattr(os, "fork"):
            return False
        wanted = _load_time_env(env)
        if self._env is not None and wanted == _load_time_env(self._env):
            return True
        if wanted == _load_time_env(os.environ):  # (re)started from this environment on first use
            self.close()
            self._proc = self._env = None
            return True
        return False

    def run(self, args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
        with self._lock, tempfile.TemporaryDirectory(prefix="forkcli") as tmp:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            for p in (out, err):
                open(p, "wb").close()
            req = {"args": list(args), "env": env, "cwd": os.fspath(cwd or os.getcwd()), "stdout": out, "stderr": err}
            self._proc.stdin.write(json.dumps(req) + "\n")
            self._proc.stdin.flush()
            reply = self._proc.stdout.readline()
            if not reply:
                raise RuntimeError(f"the CLI fork server died (exit {self._proc.wait()})")
            rc = json.loads(reply)["rc"]
            with open(out, encoding=None) as f_out, open(err, encoding=None) as f_err:
                stdout, stderr = f_out.read(), f_err.read()
        return subprocess.CompletedProcess([sys.executable, "-m", "mmbench", *args], rc, stdout, stderr)


SERVER = ForkServer()
atexit.register(SERVER.close)


def run_mmbench(args: list[str], env: dict, cwd=None) -> subprocess.CompletedProcess:
    """``python -m mmbench *args`` with ``env`` (the whole environment) in ``cwd``: forked from
    the server when it can honour ``env``, else a plain subprocess."""
    if SERVER.serves(env):
        return SERVER.run(args, env, cwd)
    return fresh_mmbench(args, env, cwd)


def fresh_mmbench(args: list[str], env: dict, cwd=None) -> subprocess.CompletedProcess:
    """``python -m mmbench *args`` as a plain subprocess, started from scratch."""
    return subprocess.run([sys.executable, "-m", "mmbench", *args], capture_output=True, text=True, env=env, cwd=cwd)
