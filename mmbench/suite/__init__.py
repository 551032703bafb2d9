"""Suites: definition (:mod:`.definition`), search planning (:mod:`.plan`) and execution
(:mod:`.execute`); the names callers use are importable from here."""
from .definition import ModelEntry, Suite, load_suite, recorded_name
from .execute import Outcome, backend_runner, execute_job, run_suite, status
from .plan import Job, Row, check_models, choose, survey

__all__ = ["ModelEntry", "Suite", "load_suite", "recorded_name", "Outcome", "backend_runner", "execute_job",
           "run_suite", "status", "Job", "Row", "check_models", "choose", "survey"]
