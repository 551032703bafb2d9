"""The models API: what every built-in baseline and every plugin is written against.

==========================  ======================================================
``Recommender``, ``Param``  the protocol and declared hyper-parameters (no torch)
``TorchRecommender``        a model trained by the shared loop (``training``)
``FitContext``              what the harness passes to ``fit``: validation for early
                            stopping, checkpoint and resume
``ContentRecommender``      two-tower multimodal model over projected item content;
``ModalityProjector``,      ``select_features`` (one modality check for runner and
``select_features``, ...    model), missing-row mask handling, ``RatingTask``;
``ContentFeatures``         the declared feature preprocessing and fine-tuning
``graph``                   sparse propagation, kNN item graphs, ``CachedEmbeddings``
==========================  ======================================================

``from mmbench.models import X`` imports torch only when ``X`` needs it, so the protocol
and ``Param`` stay cheap for ``mmbench --help`` and ``models list``.
"""
from __future__ import annotations

import importlib

from .base import Recommender, declared_modalities, model_params
from .params import Param

_LAZY = {
    "TorchRecommender": "torch_base", "ParameterCache": "torch_base", "FastDropout": "torch_base",
    "bpr_loss": "torch_base", "l2": "torch_base",
    "FitContext": "training", "FitResult": "training", "fit_loop": "training", "resolve_device": "training",
    "seed_everything": "training", "NegativeSampler": "training",
    "ContentRecommender": "content", "RatingTask": "content", "UserDotItem": "content",
    "ModalityProjector": "content", "select_features": "content", "standardize": "content",
    "init_embedding": "content", "rating_batches": "content", "CONTENT_MODALITIES": "content",
    "MISSING_MODES": "content", "ContentFeatures": "content", "ContentFeature": "content",
    "FEATURE_PREPROCESSING": "content", "register_content": "content", "NeighbourImputer": "content",
    "content_inputs": "content", "modality_dropped": "content", "features_without": "content",
    "CachedEmbeddings": "graph", "SparseOp": "graph",
}

__all__ = ["Recommender", "Param", "declared_modalities", "model_params", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
