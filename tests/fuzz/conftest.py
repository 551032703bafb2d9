"""Hypothesis profiles: a small, reproducible budget in ``make test``; ``make fuzz`` sets
``MMBENCH_FUZZ=1`` for a large, random one (and prints how many examples ran)."""
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("test", max_examples=6, derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("MMBENCH_FUZZ_EXAMPLES", "300")), **_COMMON)
settings.load_profile("fuzz" if os.environ.get("MMBENCH_FUZZ") else "test")
