"""What every fuzz test asserts of one command, judged independently of mmbench's own checks.

* it ends with exit 0, or with a non-zero exit and exactly one ``error:`` line on stderr that
  names the file (and line or field where one exists), never a traceback or an "internal error";
* when it fails, nothing is left behind in the data home or the results folder (only the empty
  ``*.lock`` files of the locks, which must stay for the next process);
* when it succeeds, what it accepted is valid data (:func:`check_prepared`).
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from hypothesis import event

from mmbench.cli import main

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
F32_MAX = float(np.finfo(np.float32).max)


@contextlib.contextmanager
def sandbox():
    """A fresh folder with ``home`` (the data home), ``cards``, ``data`` and ``results`` inside."""
    with tempfile.TemporaryDirectory(prefix="mmfuzz") as d:
        root = Path(d)
        for sub in ("home", "cards", "data", "results"):
            (root / sub).mkdir()
        yield root


def invoke(root: Path, *args: str):
    env = {"MMBENCH_HOME": str(root / "home"), "MMBENCH_CARDS": str(root / "cards"),
           "MMBENCH_RESULTS": str(root / "results"), "MMBENCH_MIRROR": None, "MMBENCH_TRACEBACK": None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)


def leftovers(root: Path) -> list[str]:
    """Files in the data home and results folder other than lock files."""
    found = []
    for base in (root / "home", root / "results"):
        for p in base.rglob("*"):
            if (p.is_file() or p.is_symlink()) and not (p.name.endswith(".lock") and p.stat().st_size == 0):
                found.append(str(p.relative_to(root)))
    return found


def check_outcome(result, root: Path, names: tuple[str, ...]) -> bool:
    """The property (module doc) for one CLI result; ``names``: what the error must mention (any of them).
    Returns whether the command succeeded."""
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"uncaught {type(exc).__name__}: {exc}"
    if result.exit_code == 0:
        event("accepted")
        return True
    event("refused")
    err = result.stderr
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    assert any(n in err for n in names), f"the error names none of {names}: {err!r}"
    left = leftovers(root)
    assert not left, f"left behind after a failure: {left[:5]}"
    return False


def check_prepared(home: Path) -> None:
    """Everything a successful command prepared is valid: ids are tokens without control characters,
    ratings and timestamps finite, labels 0/1/2, features finite float32 with at least one column."""
    for man in home.rglob("manifest.json"):
        d = man.parent
        for name in ("users.tsv", "items.tsv"):
            ids = (d / name).read_text(encoding="utf-8").split("\n")[1:-1]
            assert len(ids) == len(set(ids)), f"{name}: duplicate ids"
            bad = [i for i in ids if not i.strip() or CONTROL.search(i)]
            assert not bad, f"{name}: accepted bad ids {bad[:3]!r}"
        rating = np.load(d / "rating.npy")
        assert np.isfinite(rating).all() and (np.abs(rating) <= F32_MAX).all()
        assert set(np.unique(np.load(d / "label.npy")).tolist()) <= {0, 1, 2}
        assert np.isfinite(np.load(d / "timestamp.npy").astype(np.float64)).all()
        for values in d.glob("features/*/values.npy"):
            v = np.load(values)
            assert v.dtype == np.float32 and v.ndim == 2 and v.shape[1] >= 1 and np.isfinite(v).all()


def is_ascii_number(text: str, limit: float) -> bool:
    """An independent reading of 'a number a data file may hold': ASCII decimal, finite, within ``limit``."""
    if not re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", text):
        return False
    return math.isfinite(float(text)) and abs(float(text)) <= limit


def write_files(folder: Path, files: dict[str, bytes | str]) -> None:
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def cpu_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1")
