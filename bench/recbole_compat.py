"""Run RecBole 1.2.1 (a benchmark peer) on numpy 2, without side effects on the caller.

Applied only here, where the benchmarks import recbole (see ../shared/ENVIRONMENT.md beside the repository):
- numpy 2 removed aliases that RecBole still uses (``np.float_``, ``np.unicode_``,
  ``np.float``...): they are restored as the types they used to name, if missing;
- RecBole's ``Config`` parses ``sys.argv`` (``--key=value`` would override our settings):
  argv is reduced to the program name while RecBole runs, then restored;
- RecBole writes ``./log``, ``./log_tensorboard`` and ``./saved`` into the working
  directory: it runs inside a scratch directory, then the old one is restored.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

_ALIASES = {"float_": "float64", "complex_": "complex128", "unicode_": "str_", "string_": "bytes_",
            "bool8": "bool_", "int0": "intp", "uint0": "uintp", "float": float, "int": int, "bool": bool,
            "object": object, "complex": complex, "str": str, "unicode": str, "long": "int_"}


def restore_numpy_aliases() -> None:
    import numpy as np

    for name, target in _ALIASES.items():
        try:
            getattr(np, name)
        except AttributeError:
            setattr(np, name, getattr(np, target) if isinstance(target, str) else target)


@contextlib.contextmanager
def recbole_env(workdir: str | Path):
    """Inside: numpy aliases restored, ``sys.argv`` reduced, cwd = ``workdir``; RecBole's
    loggers quiet. Everything but the aliases is restored on exit."""
    import logging

    restore_numpy_aliases()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    old_argv, old_cwd = sys.argv[:], os.getcwd()
    sys.argv = sys.argv[:1]
    os.chdir(workdir)
    logging.getLogger().setLevel(logging.ERROR)
    try:
        yield
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)


def import_recbole():
    """Import the RecBole pieces the benchmarks use (inside :func:`recbole_env`)."""
    import warnings

    restore_numpy_aliases()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.abstract_recommender import GeneralRecommender
        from recbole.model.general_recommender import BPR
        from recbole.trainer import Trainer
        from recbole.utils import InputType
    return {"Config": Config, "create_dataset": create_dataset, "data_preparation": data_preparation,
            "GeneralRecommender": GeneralRecommender, "BPR": BPR, "Trainer": Trainer, "InputType": InputType}
