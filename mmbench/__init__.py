"""mmbench: reproducible benchmarks for multimodal recommendation.

Importing this package loads nothing heavy (no torch, no plugins): a test holds this.
"""
__version__ = "0.1.0"

from .threads import keep_freed_memory_by_default as _keep_freed  # noqa: E402
from .threads import passive_wait_by_default as _passive  # noqa: E402

_passive()  # before anything imports torch: spin-waiting OpenMP threads crawl on a busy machine
_keep_freed()  # score blocks reused from batch to batch, not page-faulted in anew (see mmbench.threads)

__all__ = ["__version__"]
