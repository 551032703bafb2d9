"""A synthetic multimodal dataset with a planted signal, written as a real prepared dataset.

Users and items get latent factors; users pick items by a softmax over their affinity;
each modality is a different noisy, nonlinear rendering of the item factors (its own
width), with some rows missing (mask False). A fraction of items are *cold*: all their
interactions are in valid/test, none in train, so only content can place them. Ratings
(1..5) come from user and item biases plus the affinity, so rating models have something
to learn beyond the global mean.

The data goes through the ordinary preparation path: a RecBole atomic ``.inter`` with a
preset ``label`` column and a dataset card in ``root``, ``prepare()`` into
``$MMBENCH_HOME/prepared``, then the features through ``FeatureStore.put``; so every
fingerprint is the real one and the runner, evaluation and records treat it like any
other dataset.

``cold_items`` and ``evaluate_cold`` measure cold-start ranking: among cold items only,
how well a model ranks each user's held-out cold items.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError

#: output width of each modality's rendering (different on purpose)
MODALITY_DIMS = {"text": 48, "image": 64, "audio": 24, "video": 32}
GENERATOR_VERSION = 1


def _params(**kw) -> dict:
    kw["generator"] = GENERATOR_VERSION
    return kw


def _render(z: np.ndarray, out_dim: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """A random two-layer tanh network applied to the item factors, plus Gaussian noise."""
    hidden = 2 * out_dim
    a = rng.normal(scale=1.0 / np.sqrt(z.shape[1]), size=(z.shape[1], hidden))
    b = rng.normal(scale=1.0 / np.sqrt(hidden), size=(hidden, out_dim))
    x = np.tanh(1.5 * z @ a) @ b
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    return (x + noise * rng.normal(size=x.shape)).astype(np.float32)


def generate(n_users: int, n_items: int, dim: int, modalities, *, per_user: int, cold_fraction: float,
             missing_fraction: float, noise: float, temperature: float, seed: int) -> dict:
    """The raw arrays (no files): interactions with split labels, ratings, item content."""
    rng = np.random.default_rng(seed)
    users_f = rng.normal(size=(n_users, dim))
    items_f = rng.normal(size=(n_items, dim))
    pop = rng.normal(scale=0.5, size=n_items)  # popularity: part of the affinity, rendered into content
    quality = rng.normal(size=n_items)  # rating bias of the item, rendered into content
    user_bias = rng.normal(scale=0.5, size=n_users)
    affinity = users_f @ items_f.T / np.sqrt(dim) + pop
    n_cold = int(round(cold_fraction * n_items))
    cold = np.zeros(n_items, dtype=bool)
    cold[rng.choice(n_items, size=n_cold, replace=False)] = True

    per_user = min(per_user, n_items)
    rows_u, rows_i, rows_r, rows_l, rows_t = [], [], [], [], []
    for u in range(n_users):
        # sampling without replacement proportional to softmax(affinity / T): Gumbel top-k
        g = affinity[u] / temperature + rng.gumbel(size=n_items)
        chosen = np.argsort(-g, kind="stable")[:per_user]
        s = affinity[u, chosen]
        z = (s - s.mean()) / (s.std() + 1e-9)
        rating = np.clip(np.round(3.2 + 0.6 * user_bias[u] + 0.6 * quality[chosen] + 0.6 * z
                                  + rng.normal(scale=0.3, size=len(chosen))), 1, 5)
        label = np.zeros(len(chosen), dtype=np.int8)
        warm = np.flatnonzero(~cold[chosen])
        rng.shuffle(warm)
        n_eval = max(1, int(round(0.1 * len(warm)))) if len(warm) >= 5 else 0
        label[warm[:n_eval]] = 1
        label[warm[n_eval:2 * n_eval]] = 2
        c = np.flatnonzero(cold[chosen])
        label[c] = np.where(rng.random(len(c)) < 0.5, 1, 2)  # cold items: valid or test, never train
        rows_u.append(np.full(len(chosen), u))
        rows_i.append(chosen)
        rows_r.append(rating)
        rows_l.append(label)
        rows_t.append(np.arange(len(chosen)))
    latent = np.column_stack([items_f, pop, quality])
    latent = (latent - latent.mean(0)) / latent.std(0)
    feats = {}
    for m in modalities:
        if m not in MODALITY_DIMS:
            raise ConfigError(f"unknown synthetic modality {m!r}", hint=f"use some of {sorted(MODALITY_DIMS)}")
        values = _render(latent, MODALITY_DIMS[m], noise, rng)
        mask = rng.random(n_items) >= missing_fraction
        values[~mask] = 0.0
        feats[m] = (values, mask)
    return {"user": np.concatenate(rows_u), "item": np.concatenate(rows_i), "rating": np.concatenate(rows_r),
            "label": np.concatenate(rows_l), "timestamp": np.concatenate(rows_t), "cold": cold,
            "latent": latent, "features": feats}


def make_synthetic(n_users: int = 300, n_items: int = 400, dim: int = 8,
                   modalities: tuple[str, ...] = ("text", "image", "audio"), *, per_user: int = 20,
                   cold_fraction: float = 0.2, missing_fraction: float = 0.1, noise: float = 0.5,
                   temperature: float = 0.5, seed: int = 0, root: str | Path | None = None,
                   name: str = "synthetic"):
    """Generate, write and prepare a synthetic multimodal dataset; returns a PreparedDataset.

    Feature keys are ``<modality>/synthetic``. ``root`` holds the source files and the
    card (default: ``$MMBENCH_HOME/synthetic/<name>-<hash>``); the prepared dataset lives
    in ``$MMBENCH_HOME/prepared`` like any other. Items never sampled by any user are
    absent (so ``n_items`` can be a little below the number asked for). Same arguments ->
    byte-identical files and the same fingerprints.
    """
    from .data.cards import load_card
    from .data.prepare import prepare
    from .io import hash_params
    from .paths import data_home

    if not 0 <= cold_fraction < 1 or not 0 <= missing_fraction < 1:
        raise ConfigError("cold_fraction and missing_fraction must be in [0, 1)")
    modalities = tuple(modalities)
    params = _params(n_users=n_users, n_items=n_items, dim=dim, modalities=list(modalities), per_user=per_user,
                     cold_fraction=cold_fraction, missing_fraction=missing_fraction, noise=noise,
                     temperature=temperature, seed=seed)
    key = hash_params(params)[:10]
    root = Path(root) if root is not None else data_home() / "synthetic" / f"{name}-{key}"
    root.mkdir(parents=True, exist_ok=True)
    g = generate(n_users, n_items, dim, modalities, per_user=per_user, cold_fraction=cold_fraction,
                 missing_fraction=missing_fraction, noise=noise, temperature=temperature, seed=seed)
    ds = prepare(load_card(_write_source(root, name, g, params, key, modalities)))
    store = ds.features
    rows = np.asarray([int(r) for r in ds.item_raw_ids()])  # our item index -> generated item id
    for m, (values, mask) in g["features"].items():
        fkey = f"{m}/synthetic"
        if fkey in store and store.get(fkey).meta.get("generator") == params:
            continue
        store.put(fkey, values[rows], mask[rows], meta={"encoder": "synthetic", "generator": params})
    return ds


def _write_source(root: Path, name: str, g: dict, params: dict, key: str, modalities) -> Path:
    """The generated interactions as a RecBole ``.inter`` with a preset split, and its card."""
    from .io import atomic_write_text

    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float\tlabel:float"]
    lines += [f"{u}\t{i}\t{r:g}\t{t}\t{lab}" for u, i, r, t, lab in
              zip(g["user"].tolist(), g["item"].tolist(), g["rating"].tolist(), g["timestamp"].tolist(),
                  g["label"].tolist())]
    atomic_write_text(root / f"{name}.inter", "\n".join(lines) + "\n")
    card = root / f"{name}.toml"
    desc = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    atomic_write_text(card, f'''[dataset]
name = "{name}"
version = "1"
title = "synthetic multimodal data with a planted signal"
description = "mmbench.synthetic.make_synthetic({desc})"
license = "CC0-1.0"
format = "recbole"
modalities = {_toml_list(["interactions", *modalities])}

[[sources]]
name = "generated-{key}"
path = "{root.as_posix()}"

[files]
interactions = "{name}.inter"

[columns]
label = "label"

[split]
method = "preset"
column = "label"
''')
    return card


def add_raw_inputs(ds) -> dict:
    """Raw inputs (for end-to-end models) rendered from a synthetic dataset's dense features (so they carry its planted
    signal), stored in its feature store with the same missing rows: ``text_tokens/synthetic``,
    16 token ids, column c of ``text/synthetic`` becoming token 1 + 4c + its quartile;
    ``image_raw/synthetic``, 32 x 32 RGB pixels (HWC), an 8 x 8 grid of 4 x 4 blocks, block c
    of grey level 128 +- 40 x column c of ``image/synthetic`` (red up, green down)."""
    store = ds.features
    text, image = store.get("text/synthetic"), store.get("image/synthetic")
    v = text.values[:, :16]
    cuts = np.quantile(v[text.mask], [0.25, 0.5, 0.75], axis=0)
    bins = (v[:, None, :] > cuts[None]).sum(1)
    tokens = (1 + 4 * np.arange(16) + bins).astype(np.float32)
    grid = image.values[:, :64].reshape(-1, 8, 8)
    red, green = (np.clip(np.round(128 + s * 40 * grid), 0, 255) for s in (1, -1))
    rgb = np.stack([red, green, np.full_like(red, 128)], -1)  # (n, 8, 8, 3)
    pixels = rgb.repeat(4, 1).repeat(4, 2).reshape(len(rgb), -1).astype(np.float32)
    return {"text_tokens/synthetic": store.put("text_tokens/synthetic", tokens, text.mask),
            "image_raw/synthetic": store.put("image_raw/synthetic", pixels, image.mask)}


def _toml_list(items) -> str:
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"


def cold_items(dataset) -> np.ndarray:
    """Items with no training interaction but at least one in valid or test (sorted indices)."""
    train = np.bincount(dataset.pairs("train")[1], minlength=dataset.n_items)
    held = np.bincount(dataset.arrays["item"][dataset.arrays["label"] > 0], minlength=dataset.n_items)
    return np.flatnonzero((train == 0) & (held > 0))


def evaluate_cold(score_fn, dataset, split: str = "test", metrics=("recall@20", "ndcg@20"), *,
                  device: str = "cpu") -> dict[str, float]:
    """Cold-start ranking: candidates are the cold items only; targets are each user's
    ``split`` interactions with cold items (train and, at test, valid items masked).

    Returns the metric means over users with at least one cold target, plus ``users`` and
    ``candidates`` (counts) and ``random_recall@k`` (what a random order scores in expectation).
    """
    import torch

    from .data.dataset import _csr
    from .evaluate.ranking import rank_and_score

    cold = cold_items(dataset)
    is_cold = np.zeros(dataset.n_items, dtype=bool)
    is_cold[cold] = True
    u, i, _ = dataset.pairs(split)
    keep = is_cold[i]
    target = _csr(u[keep], i[keep], dataset.n_users)
    exclude = dataset.csr("train", "valid") if split == "test" else dataset.csr("train")
    users = np.flatnonzero(np.diff(target[0]) > 0)
    not_cold = torch.as_tensor(~is_cold, device=device)

    def restricted(ub):
        s = score_fn(ub).to(device=device, dtype=torch.float32).clone()
        s[:, not_cold] = -torch.inf
        return s

    per_user, _, _, _ = rank_and_score(restricted, users, dataset.n_items, target, exclude, list(metrics),
                                       device=device)
    out = {k: float(np.mean(v)) if len(v) else 0.0 for k, v in per_user.items()}
    out["users"] = int(len(users))
    out["candidates"] = int(len(cold))
    for m in metrics:
        name, k = m.split("@")
        if name == "recall" and len(cold):
            out[f"random_recall@{k}"] = min(1.0, int(k) / len(cold))
    return out
