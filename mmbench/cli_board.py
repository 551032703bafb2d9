"""Protocol/leaderboard commands: compare, leaderboard check.

Attached to the ``mmbench`` group defined in :mod:`mmbench.cli`; heavy imports stay inside
the commands."""
from __future__ import annotations

import click  # noqa: F401

from .cli import _Group, main  # noqa: F401
