"""The ``mmbench`` command line: thin wrappers over library functions, one module per noun.

:mod:`.app` holds the group and its one-line error handling; each noun module
(``datasets``, ``features``, ``models``, ``run``, ``suite``, ``leaderboard``, ``parity``) defines its
commands without importing the others, and they are attached here. Heavy imports stay
inside the commands, so ``mmbench --help`` imports no torch.
"""
from __future__ import annotations

from . import datasets, features, leaderboard, models, parity, run, suite
from .app import main

for _command in (datasets.datasets, datasets.prepare, datasets.import_, datasets.export, features.features,
                 models.models, models.check, models.plugin, run.run, suite.suite, leaderboard.leaderboard,
                 leaderboard.compare, parity.parity):
    main.add_command(_command)

__all__ = ["main"]
