"""Item features computed from a card's side files, no model needed (the card's ``[derived]``).

Recipes (``[derived] "<key>" = {kind = ..., ...}``):

``kind = "multihot"``, ``field = "<item attribute>"``, optional ``sep`` (default: whitespace)
    One column per distinct value of the field (sorted), 1.0 where the item has it; items
    with an empty field are missing (mask False). E.g. ml-100k's genres (``class``).
``kind = "kg-svd"``, optional ``dim = 64``, ``min_df = 2``
    Knowledge-graph neighbourhood of each item: the item's entity (``files.link``:
    ``item_id -> entity_id``) and every entity one triple away in ``files.kg``
    (``head relation tail``, either direction). Each item is a TF-IDF-weighted multi-hot
    vector over neighbour entities shared by at least ``min_df`` items (idf =
    ``ln((1 + n) / (1 + df)) + 1``, rows L2-normalised), reduced to ``dim`` columns by a
    truncated SVD (``X V_k``, computed exactly from the eigendecomposition of ``X Xᵀ``;
    each component's sign fixed so its largest-magnitude entry is positive: deterministic).
    Items without a link or without a shared neighbour are missing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, MMBenchError

KINDS = ("multihot", "kg-svd")


def _attribute_column(ds, field: str, where: str) -> list[str]:
    attrs = ds.item_attributes()
    if attrs is None:
        raise DataError("the dataset has no item attributes (item_attributes.tsv)", where=str(ds.path))
    header, rows = attrs
    if field not in header:
        raise ConfigError(f"field {field!r} is not an item attribute (have: {', '.join(header[1:])})", where=where)
    k = header.index(field)
    return [r[k] for r in rows]


def multihot(ds, field: str, sep: str | None = None, where: str = "") -> tuple[np.ndarray, np.ndarray, dict]:
    values = _attribute_column(ds, field, where)
    tokens = [[t.strip() for t in (v.split(sep) if sep else v.split())] for v in values]
    tokens = [[t for t in ts if t] for ts in tokens]
    vocab = sorted({t for ts in tokens for t in ts})
    col = {t: j for j, t in enumerate(vocab)}
    out = np.zeros((len(values), len(vocab)), dtype=np.float32)
    for i, ts in enumerate(tokens):
        out[i, [col[t] for t in ts]] = 1.0
    mask = np.asarray([bool(ts) for ts in tokens])
    return out, mask, {"kind": "multihot", "field": field, "vocabulary": vocab}


def _read_pairs(path: Path, ncols: int) -> list[list[str]]:
    from ..data.formats.recbole import read_table

    header, rows = read_table(path)
    if len(header) != ncols:
        raise DataError(f"expected {ncols} columns, found {len(header)}", where=f"{path}:1")
    return rows


def kg_svd(ds, kg_path: Path, link_path: Path, dim: int = 64, min_df: int = 2
           ) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        import scipy.sparse as sp
    except ImportError:
        raise MMBenchError("scipy is not installed", where="kg features", hint="pip install scipy") from None
    link = {}
    for item, entity in _read_pairs(link_path, 2):
        link[item] = entity
    neighbours: dict[str, set[str]] = {}
    for head, _rel, tail in _read_pairs(kg_path, 3):
        neighbours.setdefault(head, set()).add(tail)
        neighbours.setdefault(tail, set()).add(head)
    raw_ids = ds.item_raw_ids()
    bags = [neighbours.get(link[r], set()) | {link[r]} if r in link else set() for r in raw_ids]
    df: dict[str, int] = {}
    for b in bags:
        for e in b:
            df[e] = df.get(e, 0) + 1
    vocab = sorted(e for e, c in df.items() if c >= min_df)
    col = {e: j for j, e in enumerate(vocab)}
    rows, cols = [], []
    for i, b in enumerate(bags):
        js = sorted(col[e] for e in b if e in col)
        rows.extend([i] * len(js))
        cols.extend(js)
    n = len(raw_ids)
    mask = np.zeros(n, dtype=bool)
    mask[np.unique(np.asarray(rows, dtype=np.int64))] = True
    n_present = int(mask.sum())
    if n_present == 0:
        raise DataError("no item has a knowledge-graph neighbour shared with another item", where=str(kg_path))
    idf = np.log((1 + n_present) / (1 + np.asarray([df[e] for e in vocab], dtype=np.float64))) + 1.0
    X = sp.csr_matrix((idf[cols], (rows, cols)), shape=(n, len(vocab)))
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)) @ X
    present = np.flatnonzero(mask)
    Xp = X[present]
    gram = (Xp @ Xp.T).toarray()
    evals, evecs = np.linalg.eigh(gram)  # ascending
    k = min(dim, len(present))
    order = np.argsort(-evals, kind="stable")[:k]
    lam = np.clip(evals[order], 0.0, None)
    U = evecs[:, order]
    big = np.argmax(np.abs(U), axis=0)
    U = U * np.sign(U[big, np.arange(k)])
    emb = U * np.sqrt(lam)  # = Xp V_k
    out = np.zeros((n, dim), dtype=np.float32)
    out[present, :k] = emb.astype(np.float32)
    total = float(np.clip(evals, 0, None).sum())
    meta = {"kind": "kg-svd", "dim": dim, "min_df": min_df, "entities": len(vocab), "linked_items": n_present,
            "explained_variance": round(float(lam.sum()) / total, 6) if total > 0 else 0.0}
    return out, mask, meta


def build(ds, card, key: str, recipe: dict, folder: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Compute one ``[derived]`` feature of ``card`` for the prepared dataset ``ds``."""
    where = f"{card.path} [derived] {key!r}"
    if not isinstance(recipe, dict) or recipe.get("kind") not in KINDS:
        raise ConfigError(f"recipe must be a table with kind in {KINDS}", where=where)
    kind = recipe["kind"]
    allowed = {"multihot": {"kind", "field", "sep"}, "kg-svd": {"kind", "dim", "min_df"}}[kind]
    unknown = sorted(set(recipe) - allowed)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} for kind {kind!r} (allowed: {', '.join(sorted(allowed))})",
                          where=where)
    if kind == "multihot":
        if "field" not in recipe:
            raise ConfigError("kind 'multihot' needs field = '<item attribute>'", where=where)
        return multihot(ds, str(recipe["field"]), recipe.get("sep"), where)
    files = card.files
    for role in ("kg", "link"):
        if role not in files or not (folder / files[role]).is_file():
            raise DataError(f"kind 'kg-svd' needs files.{role} in the source", where=str(folder),
                            hint="use a source that ships the knowledge graph (e.g. recbole-bundled)")
    dim, min_df = int(recipe.get("dim", 64)), int(recipe.get("min_df", 2))
    if dim < 1 or min_df < 1:
        raise ConfigError("dim and min_df must be >= 1", where=where)
    return kg_svd(ds, folder / files["kg"], folder / files["link"], dim, min_df)
