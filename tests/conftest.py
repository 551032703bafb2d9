import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the project's offline data beside the repository (never committed): found from the repo
# root, so the same tests run on any machine that has it and say what they miss elsewhere
SHARED_DATA = ROOT.parent / "shared" / "data"

# Idle OpenMP threads wait passively (spinning for a core on a busy machine costs 7-9x, see
# bench/README.md); torch may be imported before mmbench sets this. Each pytest-xdist worker
# runs one thread, so that `make test`'s workers do not oversubscribe the cores. Set here,
# before any test module imports torch; the user's own values win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def needs_shared(folder: str, *files: str):
    """Skip marker for a test that reads ``../shared/data/<folder>``: it names the first
    missing file, so a skip is never silent about why."""
    missing = [f for f in files or ("",) if not (SHARED_DATA / folder / f).exists()]
    where = f"../shared/data/{folder}/{missing[0]}".rstrip("/") if missing else ""
    return pytest.mark.skipif(bool(missing), reason=f"needs {where} (the shared offline data), absent here")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own data home and results folder unless it asks for the shared one."""
    monkeypatch.setenv("MMBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MMBENCH_MIRROR", raising=False)
    monkeypatch.delenv("MMBENCH_CARDS", raising=False)


@pytest.fixture(scope="session")
def session_home(tmp_path_factory):
    return tmp_path_factory.mktemp("mmhome")


@pytest.fixture(scope="session")
def two_texts_run(tmp_path_factory):
    """The toy suite of one model on two feature sets (``tests/suite/fakes.py``) run once per
    session: (suite, root); tests work on copies of ``root/res`` and ``root/suite``."""
    from mmbench.suite import run_suite

    from .suite.fakes import two_texts

    root = tmp_path_factory.mktemp("twotexts")
    with pytest.MonkeyPatch.context() as mp:
        suite = two_texts(root, mp)
        run_suite(suite, results=root / "res", workers=1, echo=lambda *_: None)
    return suite, root


@pytest.fixture
def ml100k(session_home, monkeypatch):
    """The embedded MovieLens-100K, prepared once per test session."""
    monkeypatch.setenv("MMBENCH_HOME", str(session_home))
    from mmbench.data.cards import find_card
    from mmbench.data.prepare import prepare

    return prepare(find_card("ml-100k"))


@pytest.fixture
def cards_dir(tmp_path, monkeypatch):
    d = tmp_path / "cards"
    d.mkdir()
    monkeypatch.setenv("MMBENCH_CARDS", str(d))
    return d


def run_cli(*args, env=None, cwd=None, check=True):
    """Run the real console entry point in a process of its own (what a user types), forked
    from a server that imported torch once (``tests/forkcli.py``)."""
    from .forkcli import run_mmbench

    e = dict(os.environ)
    e.update(env or {})
    proc = run_mmbench(list(map(str, args)), env=e, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"mmbench {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
