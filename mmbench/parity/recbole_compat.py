"""Run RecBole 1.2.1 (a peer) on numpy 2 and current scipy, without side effects on the caller.

Applied only where a peer imports recbole (see ../shared/ENVIRONMENT.md beside the repository):
- numpy 2 removed aliases that RecBole still uses (``np.float_``, ``np.unicode_``,
  ``np.float``...): they are restored as the types they used to name, if missing;
- scipy >= 1.12 dropped ``dok_matrix._update``, which RecBole's graph models (LightGCN,
  NGCF, ...) call to fill their adjacency matrix: restored as an update of the matrix's dict;
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
    import warnings

    import numpy as np

    for name, target in _ALIASES.items():
        try:
            with warnings.catch_warnings():  # numpy's "will be defined as the scalar type" notes
                warnings.simplefilter("ignore")
                getattr(np, name)
        except AttributeError:
            setattr(np, name, getattr(np, target) if isinstance(target, str) else target)


def restore_dok_update() -> None:
    """``scipy.sparse.dok_matrix._update(dict)`` (removed in scipy 1.12): set many entries at once."""
    from scipy.sparse import dok_matrix

    if not hasattr(dok_matrix, "_update"):
        dok_matrix._update = lambda self, data: self._dict.update(data)


@contextlib.contextmanager
def recbole_env(workdir: str | Path):
    """Inside: numpy aliases and ``dok_matrix._update`` restored, ``sys.argv`` reduced, cwd =
    ``workdir``; RecBole's loggers and warnings (pandas, torch deprecations) quiet. Everything
    but the restored names is put back on exit."""
    import logging
    import warnings

    restore_numpy_aliases()
    restore_dok_update()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    old_argv, old_cwd = sys.argv[:], os.getcwd()
    root = logging.getLogger()
    old_level = root.level
    sys.argv = sys.argv[:1]
    os.chdir(workdir)
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        root.setLevel(old_level)


def import_recbole() -> dict:
    """The RecBole pieces the peers use (call inside :func:`recbole_env`)."""
    import warnings

    restore_numpy_aliases()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.data.interaction import Interaction
        from recbole.model.abstract_recommender import GeneralRecommender
        from recbole.model.general_recommender import BPR
        from recbole.trainer import Trainer
        from recbole.utils import InputType, get_model, get_trainer, init_seed
    return {"Config": Config, "create_dataset": create_dataset, "data_preparation": data_preparation,
            "Interaction": Interaction, "GeneralRecommender": GeneralRecommender, "BPR": BPR, "Trainer": Trainer,
            "InputType": InputType, "get_model": get_model, "get_trainer": get_trainer, "init_seed": init_seed}
