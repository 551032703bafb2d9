"""Where things live: the data home (prepared datasets, downloads, features) and results."""
from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """``$MMBENCH_HOME`` or ``~/.cache/mmbench``."""
    env = os.environ.get("MMBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmbench"


def downloads_dir() -> Path:
    return data_home() / "downloads"


def prepared_dir() -> Path:
    return data_home() / "prepared"


def local_cards_dir() -> Path:
    """Cards written by ``mmbench import`` (a researcher's own datasets)."""
    return data_home() / "cards"


def locks_dir() -> Path:
    """Lock files of operations on names (e.g. one import of a name at a time); empty files, kept."""
    return data_home() / "locks"


def default_results_dir() -> Path:
    return Path(os.environ.get("MMBENCH_RESULTS", "results"))
