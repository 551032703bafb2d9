"""The environment a number was produced in, for the run record."""
from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from . import __version__
from .threads import describe


@lru_cache(maxsize=1)
def git_state() -> dict:
    """Commit and dirty flag of the checkout mmbench runs from (not of the caller's
    directory): see :func:`checkout_state`."""
    return checkout_state(Path(__file__).resolve().parent)


def checkout_state(src: Path) -> dict:
    """Commit and dirty flag of the git checkout holding ``src``: dirty when any tracked file
    of the checkout differs from the commit (the built-in baselines and cards live beside
    ``mmbench/`` and count too); untracked files, such as records not committed yet, do not."""
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return {"sha": None, "dirty": None}
        status = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5).stdout
        return {"sha": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict:
    import numpy
    import torch

    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {
        "mmbench": __version__,
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "device": dev,
        **describe(),
        "packages": {p: _version(p) for p in ("scipy", "ranx", "recbole", "transformers") if _version(p)},
        "argv0": Path(sys.argv[0]).name,
    }
