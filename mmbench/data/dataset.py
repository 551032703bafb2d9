"""A prepared dataset on disk, and the train-only view that models are given."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import read_json

COLUMNS = ("user", "item", "rating", "timestamp", "label")
SPLITS = {"train": 0, "valid": 1, "test": 2}


def split_fingerprint(arrays: dict, user_map: str, item_map: str) -> str:
    """sha256 over the canonical bytes of the split: columns (dtype, shape, data) + id maps."""
    h = hashlib.sha256(b"mmbench.split/1\n")
    for name in COLUMNS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    h.update(user_map.encode())
    h.update(item_map.encode())
    return h.hexdigest()


def _csr(user: np.ndarray, item: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((item, user))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users), out=indptr[1:])
    return indptr, item[order].astype(np.int64)


@dataclass
class TrainData:
    """What a model's ``fit`` sees: training interactions only (never valid/test labels)."""

    n_users: int
    n_items: int
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    dataset: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.user)

    @cached_property
    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """User -> items of the training interactions, as (indptr, indices)."""
        return _csr(self.user, self.item, self.n_users)

    def item_popularity(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    def user_degree(self) -> np.ndarray:
        return np.bincount(self.user, minlength=self.n_users)

    def sparse_matrix(self, device="cpu", values: np.ndarray | None = None):
        """Users x items sparse COO torch tensor of the training interactions."""
        import torch

        idx = torch.as_tensor(np.stack([self.user, self.item]), dtype=torch.long)
        val = torch.ones(len(self.user)) if values is None else torch.as_tensor(values, dtype=torch.float32)
        return torch.sparse_coo_tensor(idx, val, (self.n_users, self.n_items), device=device).coalesce()


class PreparedDataset:
    def __init__(self, path: Path, manifest: dict, arrays: dict):
        self.path = Path(path)
        self.manifest = manifest
        self.arrays = arrays
        stats = manifest["stats"]
        self.n_users = int(stats["users"])
        self.n_items = int(stats["items"])

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> "PreparedDataset":
        from ..features.store import load_npy

        path = Path(path)
        mpath = path / "manifest.json"
        if not mpath.is_file():
            raise DataError("not a prepared dataset (no manifest.json)", where=str(path),
                            hint="run `mmbench prepare NAME`")
        manifest = read_json(mpath)
        arrays = {name: load_npy(path / f"{name}.npy") for name in COLUMNS}
        n = {len(a) for a in arrays.values()}
        if len(n) != 1:
            raise DataError(f"columns have different lengths {sorted(n)}", where=str(path))
        ds = cls(path, manifest, arrays)
        if verify:
            fp = split_fingerprint(arrays, (path / "users.tsv").read_text(encoding="utf-8"),
                                   (path / "items.tsv").read_text(encoding="utf-8"))
            if fp != manifest.get("fingerprint"):
                raise DataError("split files do not match the manifest fingerprint (modified or corrupt)",
                                where=str(path), hint="run `mmbench prepare NAME --force`")
            if arrays["user"].max(initial=-1) >= ds.n_users or arrays["item"].max(initial=-1) >= ds.n_items:
                raise DataError("ids exceed the manifest's user/item counts", where=str(path))
        return ds

    # -- identity ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["dataset"]["name"]

    @property
    def version(self) -> str:
        return self.manifest["dataset"]["version"]

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def stats(self) -> dict:
        return self.manifest["stats"]

    def identity(self) -> dict:
        """What a run record stores about the data."""
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint,
                "filters": self.manifest["filters"], "split": self.manifest["split"],
                "source": self.manifest["source"]["name"],
                "stats": {k: self.stats[k] for k in ("users", "items", "interactions")}
                | {"splits": self.stats["splits"]}}

    # -- access ------------------------------------------------------------------------------
    @property
    def features(self):
        from ..features.store import FeatureStore

        return FeatureStore(self.path / "features", self.n_items)

    def mask(self, split: str) -> np.ndarray:
        return self.arrays["label"] == SPLITS[split]

    def train_data(self) -> TrainData:
        m = self.mask("train")
        a = self.arrays
        return TrainData(self.n_users, self.n_items, a["user"][m], a["item"][m],
                         a["rating"][m].astype(np.float32), a["timestamp"][m], dataset=self.name)

    def csr(self, *splits: str) -> tuple[np.ndarray, np.ndarray]:
        """User -> items of the given splits; cached, since every validation pass asks again."""
        key = tuple(sorted(set(splits)))
        cache = self.__dict__.setdefault("_csr_cache", {})
        if key not in cache:
            m = np.zeros(len(self.arrays["label"]), dtype=bool)
            for s in key:
                m |= self.mask(s)
            cache[key] = _csr(self.arrays["user"][m], self.arrays["item"][m], self.n_users)
        return cache[key]

    def pairs(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.mask(split)
        return self.arrays["user"][m], self.arrays["item"][m], self.arrays["rating"][m]

    def item_raw_ids(self) -> list[str]:
        return (self.path / "items.tsv").read_text(encoding="utf-8").split("\n")[1:-1]

    def user_raw_ids(self) -> list[str]:
        return (self.path / "users.tsv").read_text(encoding="utf-8").split("\n")[1:-1]

    def item_attributes(self) -> tuple[list[str], list[list[str]]] | None:
        p = self.path / "item_attributes.tsv"
        if not p.is_file():
            return None
        lines = p.read_text(encoding="utf-8").split("\n")[:-1]
        return lines[0].split("\t"), [ln.split("\t") for ln in lines[1:]]
