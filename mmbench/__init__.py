"""mmbench: reproducible benchmarks for multimodal recommendation.

Importing this package loads nothing heavy (no torch, no plugins): a test holds this.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
