"""Parity: does our implementation of a model score what a packaged peer's scores on the same
split, evaluator, early-stopping rule and seeds?

``run_parity(model, dataset, peer, ...) -> record`` (:mod:`.driver`); peers are adapters
(:mod:`.adapters`: RecBole, Cornac; the ``peers`` extra); :mod:`.report` compares the two
sides over seeds (Welch's t-test), renders the table and reads the records a suite keeps in
``<suite>/parity/``. Importing this package imports neither torch nor a peer.
"""
from __future__ import annotations

from .report import ALPHA, SCHEMA, TEST, load_parity, parity_path, table_rows

__all__ = ["ALPHA", "SCHEMA", "TEST", "load_parity", "parity_path", "table_rows"]
