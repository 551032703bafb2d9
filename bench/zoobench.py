"""Training the zoo: every built-in ranking model, seconds per epoch and seconds to its
converged validation score, on the boards' datasets (ml-100k, lfm2k) and features.

Ours run exactly as ``mmbench run`` does; where a packaged peer has the model (RecBole: BPR,
LightGCN; Cornac: LearnBPR, VBPR, AMR) the peer's own training code runs next to it through
:mod:`mmbench.parity` with equal hyper-parameters, on the same split, scored by the same
evaluator and stopped by the same early-stopping rule. Every model also gets two bounds: BPR's
epoch on the same data (a multimodal model should cost no more than a few BPR epochs per epoch
unless its method needs it) and its own step bound (:func:`step_bound`: the forward and
backward pass of its loss over one epoch of batches, timed alone), which says how much of an
epoch is the model's own arithmetic and how much the loop around it.

Each model first runs ``probe_epochs`` epochs (its seconds per epoch); when that predicts at
most ``budget_s`` for ``max_epochs`` epochs (ours and the peer's alike) it then runs with its
declared defaults, epochs
capped at ``max_epochs`` and its own patience: epochs run, best epoch, whether early stopping
fired before the cap (converged), and the seconds to its best epoch (fit time x best epoch /
epochs run: validation included, spread evenly).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = {"bpr": "recbole", "lightgcn": "recbole", "bpr-sgd": "cornac", "vbpr": "cornac", "amr": "cornac"}
SUITES = {"ml-100k": "ml100k", "lfm2k": "lfm2k"}


#: the boards' features (lfm2k: the tag text; its artist-name text is the v2 board's second set)
FEATURES = {"ml-100k": ["text/all-MiniLM-L6-v2", "meta/genre", "kg/entity-svd64", "text_tokens/minilm-32"],
            "lfm2k": ["text/all-MiniLM-L6-v2", "audio/vggish", "audio/whisper"]}


def load(dataset: str, mirror: str | None):
    """The board's prepared dataset and the zoo's feature keys (ml-100k's built if missing)."""
    from mmbench.suite.definition import load_suite

    suite = load_suite(ROOT / "leaderboards" / SUITES[dataset] / "suite.toml")
    if dataset == "ml-100k":
        exe = str(Path(sys.executable).with_name("mmbench"))
        subprocess.run([exe, "features", "build-defaults", "-d", "ml-100k"], check=True, capture_output=True)
    ds = suite.prepare(mirror=mirror)
    if dataset == "ml-100k" and "text_tokens/minilm-32" not in ds.features.keys():
        subprocess.run([exe, "features", "extract", "-d", "ml-100k", "-m", "text_tokens", "-e", "minilm-32"],
                       check=True, capture_output=True)
    return ds, FEATURES[dataset]


def ranking_models() -> list[str]:
    from mmbench import registry
    from mmbench.runner import ModelSpec

    return [n for n in sorted(registry.entries("models"))
            if getattr(ModelSpec.resolve(n).cls, "task", "ranking") == "ranking"]


def _fit_summary(run: dict, cap: int | None) -> dict:
    fit, t = run["fit"], run["timing"]
    epochs_run = int(fit.get("epochs_run") or 0)
    best = int(fit.get("best_epoch") or 0)
    out = {"s_per_epoch": fit.get("seconds_per_epoch"), "epochs_run": epochs_run, "best_epoch": best,
           "fit_s": t["fit_s"], "best_valid": fit.get("best_valid")}
    if cap is not None:
        out["converged"] = epochs_run < cap
        out["s_to_best"] = round(t["fit_s"] * best / max(epochs_run, 1), 3)
    return out


def one_model(name: str, ds, feature_keys, *, probe_epochs: int, max_epochs: int, budget_s: float, log) -> dict:
    """Probe, then (within the budget) the capped full run, ours and the peer's alike."""
    from mmbench.errors import MMBenchError
    from mmbench.runner import ModelSpec

    spec = ModelSpec.resolve(name)
    defaults = spec.params({})
    peer = PEERS.get(name)
    epochs = defaults.get("epochs")
    runs = [("probe", {"epochs": probe_epochs, "patience": probe_epochs} if epochs else {})]
    out = {"model": name, "peer": peer, "default_epochs": epochs, "patience": defaults.get("patience")}
    try:
        for stage, params in runs:
            rec = _both(spec, ds, peer, params, feature_keys)
            cap = params.get("epochs") if stage == "full" else None
            out[stage] = {"ours": _fit_summary(rec["ours"][0], cap)}
            if peer:
                out[stage]["peer"] = _fit_summary(rec["theirs"][0], cap)
            per_epoch = max(v["s_per_epoch"] or 0.0 for v in out[stage].values())  # ours or the peer's
            if stage == "probe" and epochs:
                cap = min(int(epochs), max_epochs)
                if per_epoch * cap <= budget_s:
                    runs.append(("full", {"epochs": cap}))
                else:
                    out["full_skipped"] = f"{per_epoch:.2f} s/epoch x {cap} epochs > budget {budget_s:g} s"
            log(f"  {name} {stage}: {out[stage]}")
        out["step_bound_s"] = step_bound(spec, ds, feature_keys, {})
        log(f"  {name} step bound: {out['step_bound_s']} s/epoch")
    except MMBenchError as e:
        out["error"] = str(e).splitlines()[0]
        log(f"  {name}: {out['error']}")
    return out


def step_bound(spec, ds, feature_keys, params: dict) -> float | None:
    """The model's own compute per epoch: the forward and backward pass of its loss over one
    epoch of batches drawn beforehand, timed alone (no negative sampling or graph resampling,
    no optimiser step, no validation, no checkpoint). What the shared loop adds on top is
    ``s/epoch / bound``. None for a model without a gradient (a solver updating its own
    parameters, or no epochs)."""
    import time

    import torch

    from mmbench.runner import dataset_features

    cls = spec.cls
    if not hasattr(cls, "loss") or getattr(cls, "optimizer_kind", "adam") is None or "epochs" not in cls.params_:
        return None
    model = cls(**spec.params({**params, "epochs": 1}))
    data = ds.train_data()
    model.fit(data, dataset_features(cls, ds, feature_keys), seed=0)
    batches = list(model.batches(data, 2))
    module = model.module_
    module.train()
    best = float("inf")
    for _ in range(2):  # the better of two passes: the first may still warm caches
        t0 = time.perf_counter()
        for b in batches:
            module.zero_grad(set_to_none=True)
            model.loss(b).backward()
        best = min(best, time.perf_counter() - t0)
    return round(best, 4)


def _both(spec, ds, peer: str | None, params: dict, feature_keys) -> dict:
    """Ours on seed 0 and, if there is one, the peer's on seed 0 (as ``mmbench parity`` runs them)."""
    from mmbench.parity.adapters import mapping
    from mmbench.parity.driver import run_ours, run_peer
    from mmbench.protocol import Protocol
    from mmbench.runner import dataset_features

    out = {"ours": [run_ours(spec, ds, params, 0, Protocol(), feature_keys)], "theirs": []}
    if peer:
        resolved = spec.params(params)
        features = dataset_features(spec.cls, ds, feature_keys)
        m = mapping(peer, spec.name, resolved)
        if features:  # preprocessed as our model reads them (its ``features`` parameter)
            m.features = resolved.get("features", "standard")
        out["theirs"].append(run_peer(peer, m, ds, features, resolved, 0, Protocol()))
    return out


def zoo(dataset: str, *, mirror: str | None, models: list[str] | None = None, probe_epochs: int = 3,
        max_epochs: int = 200, budget_s: float = 300.0, log=print) -> dict:
    ds, feature_keys = load(dataset, mirror)
    rows = [one_model(m, ds, feature_keys, probe_epochs=probe_epochs, max_epochs=max_epochs, budget_s=budget_s,
                      log=log) for m in (models or ranking_models())]
    for r in rows:  # per epoch: the full run's where there is one (the probe's includes one-off warm-up)
        for side in ("ours", "peer"):
            run = r.get("full", {}).get(side) or r.get("probe", {}).get(side)
            if run is not None:
                r[f"{side}_s_per_epoch"] = run["s_per_epoch"]
    bpr = next((r.get("ours_s_per_epoch") for r in rows if r["model"] == "bpr"), None)
    for r in rows:
        s = r.get("ours_s_per_epoch")
        r["bpr_epochs_per_epoch"] = round(s / bpr, 2) if s and bpr else None
        bound = r.get("step_bound_s")
        r["x_step_bound"] = round(s / bound, 2) if s and bound else None
    st = ds.identity()["stats"]
    import torch

    return {"threads": torch.get_num_threads(), "data": dataset, "users": st["users"], "items": st["items"],
            "train": st["splits"]["train"]["interactions"], "features": feature_keys,
            "probe_epochs": probe_epochs, "max_epochs": max_epochs, "budget_s": budget_s, "models": rows}
