"""Batched, resumable feature extraction into a ``FeatureStore``.

``extract_features`` encodes ``inputs[i]`` (the media of item ``i``; ``None`` = the item has
none) batch by batch. Each finished batch is written atomically to
``cache_dir/<cache_key>/batch_<start>.npy`` (+ ``batch_<start>.json`` with the rows that
failed to decode, written first: the ``.npy`` marks the batch complete), so a run killed
part-way resumes where it stopped. ``cache_key`` is the sha256 of the encoder's key, class
and ``config()``, the batch size and every input (text: its sha256; file: path, size and
mtime_ns), so any change to the model, its options or the media starts a fresh cache.

Media that fail to decode (the encoder raises ``DataError``) and ``None`` inputs become rows
with mask False and zero values; failures are counted in the meta and reported with a
``MissingMediaWarning`` naming the first few files.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError, RegistryError
from ..io import atomic_write_bytes, canonical_json, read_json, write_json
from .encoders.base import Encoder, check_output
from .store import Feature, FeatureStore, load_npy

CACHE_VERSION = 1
_SHOW_FAILED = 5  # files named in the warning
_KEEP_FAILED = 50  # failures listed in the feature meta


class MissingMediaWarning(UserWarning):
    """Some items' media could not be decoded; their rows are marked missing."""


def _encoder_key(encoder: Any) -> str:
    return f"{encoder.modality}/{encoder.name}"


def _input_digest(encoder: Any, inputs: list) -> str:
    h = hashlib.sha256()
    text = getattr(encoder, "reads", encoder.modality) == "text"
    for i, x in enumerate(inputs):
        if x is None:
            h.update(b"N\n")
        elif text:
            if not isinstance(x, str):
                raise DataError(f"inputs[{i}] is {type(x).__name__}, expected str or None",
                                where=f"encoder {_encoder_key(encoder)}")
            h.update(b"T" + hashlib.sha256(x.encode("utf-8", "surrogatepass")).digest() + b"\n")
        else:
            if not isinstance(x, (str, os.PathLike)):
                raise DataError(f"inputs[{i}] is {type(x).__name__}, expected a file path or None",
                                where=f"encoder {_encoder_key(encoder)}")
            p = os.fspath(x)
            try:
                st = os.stat(p)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "absent"
            h.update(f"F{p}\0{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def cache_key(encoder: Any, inputs: list, batch_size: int) -> str:
    """sha256 of encoder identity + config + batch size + the inputs (see module doc)."""
    try:
        head = canonical_json({"v": CACHE_VERSION, "encoder": _encoder_key(encoder),
                               "class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
                               "config": encoder.config(), "batch_size": int(batch_size),
                               "n": len(inputs)}, indent=None)
    except (TypeError, ValueError) as e:
        raise RegistryError(f"encoder config() is not plain JSON ({e})",
                            where=f"encoder {_encoder_key(encoder)}") from None
    return hashlib.sha256((head + _input_digest(encoder, inputs)).encode()).hexdigest()


def _tolerant(encoder: Any) -> Callable[..., tuple[np.ndarray, dict[int, str]]]:
    fn = getattr(encoder, "encode_tolerant", None)
    return fn if fn is not None else partial(Encoder.encode_tolerant, encoder)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _load_batch(cdir: Path, start: int, rows: int, dim: int) -> tuple[np.ndarray, dict[int, str]] | None:
    """A finished batch from the cache, or None if absent/unusable (then it is re-encoded)."""
    npy, side = cdir / f"batch_{start}.npy", cdir / f"batch_{start}.json"
    if not (npy.is_file() and side.is_file()):
        return None
    try:
        vals = load_npy(npy)
        info = read_json(side)
        failed = {int(k): str(v) for k, v in info.get("failed", {}).items()}
    except (DataError, AttributeError, ValueError, TypeError):
        return None
    if (vals.dtype != np.float32 or vals.shape != (rows, dim) or not np.isfinite(vals).all()
            or info.get("start") != start or info.get("rows") != rows):
        return None
    return vals, failed


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    for pkg in ("torch", "transformers", "pillow", "soundfile", "librosa", "torchaudio", "torchvision",
                "efficientnet-lite-pytorch"):
        mod = {"pillow": "PIL", "efficientnet-lite-pytorch": "efficientnet_lite_pytorch"}.get(pkg, pkg)
        if mod in sys.modules:
            try:
                out[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
    try:
        from .. import __version__

        out["mmbench"] = __version__
    except ImportError:
        pass
    return out


def _progress_bar(progress: bool, n: int, key: str):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=n, desc=key, unit="item", dynamic_ncols=True)


def _encode_batch(encode, inputs: list, start: int, stop: int, dim: int, device: str,
                  where: str) -> tuple[np.ndarray, dict[int, str]]:
    """Rows ``start:stop`` encoded (zeros where there is no input or decoding failed) and the
    failures by item index."""
    pos = [i for i in range(start, stop) if inputs[i] is not None]
    vals = np.zeros((stop - start, dim), dtype=np.float32)
    if not pos:
        return vals, {}
    out, bad = encode([inputs[i] for i in pos], device=device)
    out = np.asarray(out, dtype=np.float32)
    if out.shape != (len(pos), dim) or any(not 0 <= j < len(pos) for j in bad):
        raise RegistryError(f"encoder returned shape {out.shape} for {len(pos)} inputs "
                            f"(expected ({len(pos)}, {dim}))", where=where)
    good = [j for j in range(len(pos)) if j not in bad]
    if good:
        vals[[pos[j] - start for j in good]] = check_output(out[good], len(good), dim, where=where)
    return vals, {pos[j]: msg for j, msg in bad.items()}


def _run_batches(encoder: Any, inputs: list, cdir: Path, bs: int, device: str, bar):
    """Every batch, from the cache when finished there, else encoded and cached. Returns the
    values, the mask, the failures and how many rows came from the cache."""
    n, dim = len(inputs), int(encoder.dim)
    encode, where = _tolerant(encoder), f"encoder {_encoder_key(encoder)}"
    values = np.zeros((n, dim), dtype=np.float32)
    mask = np.array([x is not None for x in inputs], dtype=bool)
    failed_all: dict[int, str] = {}
    n_cached = 0
    for start in range(0, n, bs):
        stop = min(n, start + bs)
        got = _load_batch(cdir, start, stop - start, dim)
        if got is not None:
            vals, failed = got
            n_cached += stop - start
        else:
            vals, failed = _encode_batch(encode, inputs, start, stop, dim, device, where)
            # sidecar first, matrix last: the .npy marks the batch complete
            write_json(cdir / f"batch_{start}.json",
                       {"start": start, "rows": stop - start, "failed": {str(k): v for k, v in failed.items()}})
            _save_npy(cdir / f"batch_{start}.npy", vals)
        values[start:stop] = vals
        for i, msg in failed.items():
            mask[i] = False
            failed_all[i] = msg
        if bar is not None:
            bar.update(stop - start)
    values[~mask] = 0.0
    return values, mask, failed_all, n_cached


def _warn_failed(key: str, failed_all: dict[int, str], n: int) -> None:
    n_failed = len(failed_all)
    if n_failed:
        shown = "; ".join(failed_all[i] for i in sorted(failed_all)[:_SHOW_FAILED])
        more = f" (and {n_failed - _SHOW_FAILED} more)" if n_failed > _SHOW_FAILED else ""
        warnings.warn(f"feature {key}: {n_failed} of {n} items could not be decoded and are marked missing: "
                      f"{shown}{more}", MissingMediaWarning, stacklevel=3)


def extract_features(store: FeatureStore, encoder: Any, inputs: list, *, key: str | None = None,
                     batch_size: int = 64, device: str = "cpu", progress: bool = True,
                     cache_dir: str | Path, keep_cache: bool = False, provenance: dict | None = None) -> Feature:
    """Encode ``inputs`` (one per item, ``None`` = no media) and store the feature.

    Resumable: finished batches are cached under ``cache_dir/<cache_key>/`` and skipped on a
    rerun. The cache folder is removed after the feature is stored unless ``keep_cache``.
    ``provenance`` (where the inputs come from, :mod:`.provenance`) is stored in the meta.
    Returns the stored ``Feature`` (key ``key`` or ``"<modality>/<name>"``).
    """
    key = FeatureStore.check_key(key or _encoder_key(encoder))
    inputs = list(inputs)
    n = len(inputs)
    if n != store.n_items:
        raise DataError(f"got {n} inputs but the dataset has {store.n_items} items", where=f"feature {key}",
                        hint="pass one input per item index (None where an item has no media)")
    bs = int(batch_size)
    if bs < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}", where=f"feature {key}")
    config = encoder.config()
    ck = cache_key(encoder, inputs, bs)
    cdir = Path(cache_dir) / ck
    cdir.mkdir(parents=True, exist_ok=True)
    write_json(cdir / "manifest.json", {"key": key, "encoder": _encoder_key(encoder), "config": config,
                                        "batch_size": bs, "n_items": n})
    bar = _progress_bar(progress, n, key)
    try:
        values, mask, failed_all, n_cached = _run_batches(encoder, inputs, cdir, bs, device, bar)
    finally:
        if bar is not None:
            bar.close()
    _warn_failed(key, failed_all, n)
    meta = {
        "encoder": _encoder_key(encoder),
        "encoder_class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
        "config": config,
        "n_missing": int((~mask).sum()),
        "n_no_input": int(sum(x is None for x in inputs)),
        "n_failed": len(failed_all),
        "failed": [{"index": i, "error": failed_all[i]} for i in sorted(failed_all)[:_KEEP_FAILED]],
        "cache_key": ck,
        "batch_size": bs,
        "device": str(device),
        "n_resumed_rows": n_cached,
        "versions": _versions(),
    }
    if provenance is not None:
        meta["provenance"] = provenance
    feat = store.put(key, values, mask, meta=meta)
    if not keep_cache:
        shutil.rmtree(cdir, ignore_errors=True)
    return feat
