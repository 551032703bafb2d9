"""Suites: definition (:mod:`.definition`), the tuning budget and what a version freezes
(:mod:`.tuning`), search planning (:mod:`.plan`) and execution (:mod:`.execute`); the names
callers use are importable from here."""
from .definition import RULES, ModelEntry, Suite, load_suite
from .execute import Outcome, backend_runner, execute_job, run_suite, status
from .plan import Job, Row, check_models, choose, survey
from .tuning import definition, definition_hash

__all__ = ["RULES", "ModelEntry", "Suite", "load_suite", "Outcome", "backend_runner", "execute_job", "run_suite",
           "status", "Job", "Row", "check_models", "choose", "survey", "definition", "definition_hash"]
