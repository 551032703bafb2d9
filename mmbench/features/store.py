"""Feature store: modality key -> float32 matrix row-aligned to the item index + a mask.

Layout under a prepared dataset: ``features/<key with '/' as '__'>/`` holding
``values.npy`` (float32, n_items x d), ``mask.npy`` (bool, n_items; True = row present)
and ``meta.json`` (key, encoder, source, fingerprint). Rows whose mask is False are
zero in ``values`` and must be treated as missing by models: no silent imputation.
Files are loaded with ``allow_pickle=False``; every write is atomic.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..names import check_feature_key
from ..io import atomic_write_bytes, open_regular, read_json, storage, write_json

_F32_MAX = float(np.finfo(np.float32).max)


def feature_fingerprint(values: np.ndarray, mask: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{values.dtype.str}|{values.shape}|".encode())
    h.update(np.ascontiguousarray(values).tobytes())
    h.update(np.packbits(mask.astype(bool)).tobytes())
    return h.hexdigest()


def validate_matrix(values: Any, n_items: int, *, where: str) -> np.ndarray:
    """Check a candidate feature matrix; return it as C-contiguous float32.

    Real numbers only, 2-D with at least one column, one row per item, every value finite and
    within float32's range (checked on the values as given, so 1e300 is named as 1e300, not inf).
    """
    arr = np.asarray(values)
    if arr.dtype == object:
        raise DataError("object arrays are not accepted (they would need unpickling)", where=where)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"feature matrix has dtype {arr.dtype}, expected a real number type", where=where)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(f"feature matrix has shape {arr.shape}, expected (n_items, dim) with dim >= 1", where=where)
    if arr.shape[0] != n_items:
        raise DataError(f"feature matrix has {arr.shape[0]} rows but the dataset has {n_items} items",
                        where=where, hint="rows must be aligned to the item index")
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataError(f"non-finite value {arr[row, col]} at row {row}, column {col} "
                        f"({int(bad.any(axis=1).sum())} rows affected)", where=where,
                        hint="mark missing rows with a mask instead of NaN")
    big = np.abs(arr) > _F32_MAX
    if big.any():
        row, col = map(int, np.argwhere(big)[0])
        raise DataError(f"value {float(arr[row, col])!r} at row {row}, column {col} is outside the float32 range "
                        f"(|x| <= {_F32_MAX:.4g}; {int(big.any(axis=1).sum())} rows affected)", where=where,
                        hint="features are stored as float32: rescale them")
    return np.ascontiguousarray(arr, dtype=np.float32)


def load_npy(path: Path) -> np.ndarray:
    """A plain numeric ``.npy`` (bool, integers, floats) from a regular file, never unpickled.

    The header is checked before anything is allocated: a ``.npz``, a pickle or object array, a
    forged shape or a size that does not match the bytes on disk is a DataError naming the file.
    """
    from numpy.lib import format as npf

    def refuse(why: str) -> DataError:
        return DataError(f"cannot read as a plain numeric .npy ({why})", where=str(path),
                         hint="pickled/object arrays are refused; save with np.save(arr.astype('float32'))")

    with open_regular(path) as f:
        try:
            version = npf.read_magic(f)
            read_header = {(1, 0): npf.read_array_header_1_0, (2, 0): npf.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version} is not supported")
            shape, fortran, dtype = read_header(f)
        except Exception as e:  # noqa: BLE001 - numpy's header parser raises what its
            raise refuse(str(e)[:200] or type(e).__name__) from None  # tokenizer does (TokenError, ...)
        if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields or dtype.subdtype:
            raise refuse(f"it holds {dtype} values, not plain numbers")
        if any(d < 0 for d in shape):
            raise refuse(f"negative shape {shape} in the header")
        count = math.prod(shape)
        have = os.fstat(f.fileno()).st_size - f.tell()
        if count * dtype.itemsize != have:
            raise refuse(f"the header says shape {shape} of {dtype} ({count * dtype.itemsize} bytes) but "
                         f"{have} bytes follow it: truncated or forged")
        with storage(path, "read"):
            arr = np.fromfile(f, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C")


@dataclass(frozen=True)
class Feature:
    key: str
    values: np.ndarray  # float32 (n_items, d)
    mask: np.ndarray  # bool (n_items,), True where the row is present
    fingerprint: str
    meta: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def modality(self) -> str:
        return self.key.split("/", 1)[0]


class FeatureStore:
    """Feature matrices of one prepared dataset."""

    def __init__(self, root: str | Path, n_items: int):
        self.root = Path(root)
        self.n_items = int(n_items)
        self._cache: dict[str, Feature] = {}

    check_key = staticmethod(check_feature_key)

    def _dir(self, key: str) -> Path:
        return self.root / self.check_key(key).replace("/", "__")

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if (d / "meta.json").is_file():
                out.append(d.name.replace("__", "/", 1))
        return out

    def __contains__(self, key: str) -> bool:
        return (self._dir(key) / "meta.json").is_file()

    def modalities(self) -> set[str]:
        return {k.split("/", 1)[0] for k in self.keys()}

    def keys_for(self, modality: str) -> list[str]:
        return [k for k in self.keys() if k.split("/", 1)[0] == modality]

    def put(self, key: str, values: Any, mask: Any | None = None, meta: dict | None = None) -> Feature:
        d = self._dir(key)
        arr = validate_matrix(values, self.n_items, where=f"feature {key}")
        if mask is None:
            m = np.ones(self.n_items, dtype=bool)
        else:
            m = np.asarray(mask, dtype=bool)
            if m.shape != (self.n_items,):
                raise DataError(f"mask has shape {m.shape}, expected ({self.n_items},)", where=f"feature {key}")
        arr = arr.copy()
        arr[~m] = 0.0  # missing rows carry no values; models must use the mask
        fp = feature_fingerprint(arr, m)
        info = dict(meta or {})
        info.update({"key": key, "fingerprint": fp, "shape": list(arr.shape),
                     "missing_rows": int((~m).sum())})
        from filelock import FileLock

        with storage(d):
            d.mkdir(parents=True, exist_ok=True)
        with FileLock(str(d) + ".lock"):  # two writers of one key never mix their files
            for name, a in (("values.npy", arr), ("mask.npy", m)):
                buf = io.BytesIO()
                np.save(buf, a, allow_pickle=False)
                atomic_write_bytes(d / name, buf.getvalue())
            write_json(d / "meta.json", info)  # written last: its presence marks a complete feature
        feat = Feature(key, arr, m, fp, info)
        self._cache[key] = feat
        return feat

    def get(self, key: str) -> Feature:
        if key in self._cache:
            return self._cache[key]
        d = self._dir(key)
        if not (d / "meta.json").is_file():
            have = ", ".join(self.keys()) or "none"
            raise DataError(f"feature {key!r} not found (available: {have})", where=str(self.root),
                            hint="run `mmbench features extract` or import the features")
        meta = read_json(d / "meta.json")
        values = load_npy(d / "values.npy")
        mask = load_npy(d / "mask.npy").astype(bool)
        values = validate_matrix(values, self.n_items, where=str(d / "values.npy"))
        fp = feature_fingerprint(values, mask)
        if fp != meta.get("fingerprint"):
            raise DataError("feature files do not match their recorded fingerprint (modified or corrupt)",
                            where=str(d), hint="re-extract or re-import this feature")
        feat = Feature(key, values, mask, fp, meta)
        self._cache[key] = feat
        return feat

    def view(self, keys: list[str] | None = None) -> "FeatureView":
        """A read-only mapping key -> Feature over ``keys`` (default: every stored key) that
        loads a feature only when it is looked up; an unknown key is an error now."""
        have = self.keys()
        for k in keys or ():
            if k not in have:
                raise ConfigError(f"feature {k!r} is not in this dataset (have: {have})", where=str(self.root),
                                  hint="run `mmbench features extract` first")
        return FeatureView(self, have if keys is None else list(keys))

    def fingerprints(self, keys: list[str] | None = None) -> dict[str, str]:
        return {k: self.get(k).fingerprint for k in (self.keys() if keys is None else keys)}


class FeatureView(Mapping):
    """Some keys of a :class:`FeatureStore`, loaded on first lookup."""

    def __init__(self, store: FeatureStore, keys: list[str]):
        self.store, self._keys = store, list(keys)

    def __getitem__(self, key: str) -> Feature:
        if key not in self._keys:
            raise KeyError(key)
        return self.store.get(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
