"""The encoder interface: raw item media (text, image file, audio file) -> float32 vectors.

Importing this module is cheap (numpy and the standard library only); every encoder loads
torch, transformers and its weights lazily, on the first ``encode``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError, DataError, MMBenchError, RegistryError


class Encoder:
    """Base class of all feature encoders.

    Subclasses set ``modality`` ("text" | "image" | "audio") and ``name`` (the feature key
    is ``f"{modality}/{name}"``), list the options they accept with their defaults in
    ``defaults``, and implement ``dim``, ``config`` and ``encode``. ``__init__`` only stores
    options; weights are loaded on the first ``encode``.
    """

    modality: ClassVar[str] = ""
    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} (known: {known})",
                              where=f"encoder {self.key}")
        self.options: dict[str, Any] = {**self.defaults, **options}

    # ---------------------------------------------------------------- interface
    @property
    def key(self) -> str:
        return f"{self.modality}/{self.name}"

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def config(self) -> dict:
        """Everything that changes the numbers (JSON-serialisable): cache keys and feature meta."""
        raise NotImplementedError

    def encode(self, inputs: list, *, device: str = "cpu") -> np.ndarray:
        """float32 array (len(inputs), dim). Raises ``DataError`` naming the file on bad media."""
        raise NotImplementedError

    def encode_tolerant(self, inputs: list, *, device: str = "cpu") -> tuple[np.ndarray, dict[int, str]]:
        """Like ``encode`` but an input that fails with ``DataError`` becomes a zero row.

        Returns ``(values, failed)`` where ``failed`` maps the position in ``inputs`` to the
        error message. This default tries the whole batch, then falls back to one call per
        input; media encoders override it to decode items one by one and run the model once.
        """
        if not inputs:
            return np.zeros((0, self.dim), dtype=np.float32), {}
        try:
            return self.encode(inputs, device=device), {}
        except DataError:
            pass
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        failed: dict[int, str] = {}
        for i, x in enumerate(inputs):
            try:
                out[i] = self.encode([x], device=device)[0]
            except DataError as e:
                failed[i] = str(e)
        return out, failed

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if self.defaults.get(k) != v)
        return f"{type(self).__name__}({opts})"


# -------------------------------------------------------------------- helpers
def optional_import(module: str) -> Any | None:
    """Import ``module`` if it is installed *and* imports cleanly, else ``None``.

    torchvision/torchaudio wheels built for CUDA are installable next to a CPU torch but fail
    at import (missing operators or shared libraries); that counts as not available.
    """
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.import_module(module)
    except (ImportError, OSError, RuntimeError, AttributeError):
        return None


def require_torch():
    try:
        import torch
    except ImportError:
        raise MMBenchError("torch is not installed", where="encoders",
                           hint="pip install 'mmbench[features]' (or torch) to extract features") from None
    return torch


def resolve_device(device: str) -> str:
    torch = require_torch()
    dev = str(device or "cpu")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {dev!r} requested but CUDA is not available", where="encoders",
                          hint="use device='cpu'")
    if dev == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' requested but it is not available", where="encoders",
                          hint="use device='cpu'")
    return dev


def as_path_str(x: Any, *, where: str) -> str:
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    raise DataError(f"expected a file path, got {type(x).__name__}", where=where)


def check_output(values: Any, n: int, dim: int, *, where: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != (n, dim):
        raise RegistryError(f"encoder returned shape {arr.shape}, expected ({n}, {dim})", where=where,
                            hint="an encoder must return one row of length `dim` per input")
    if not np.isfinite(arr).all():
        raise RegistryError("encoder returned non-finite values", where=where)
    return np.ascontiguousarray(arr)


def load_class(spec: str) -> type[Encoder]:
    mod, _, attr = spec.partition(":")
    return getattr(importlib.import_module(mod), attr)
