"""Suites: a versioned benchmark definition in ``leaderboards/<suite>/suite.toml``.

A suite fixes the dataset (card name + version + expected fingerprint), the data
protocol (filters, split), the evaluation protocol (metrics, main metric, masking), the
seeds and the models with their parameters (a grid expands to several configurations).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .protocol import Protocol
from .schema import ArrayOf, ListOf, Table, load_toml, validate
from .data.cards import FILTERS_SPEC, SPLIT_SPEC

SUITE_SPEC = {
    "suite": Table({
        "name": (str, True),
        "version": (int, True),
        "description": (str, False),
        "results": (str, False),  # where records live, relative to the suite folder
    }, required=True),
    "dataset": Table({
        "name": (str, True),
        "version": (str, True),
        "fingerprint": (str, False),
        "source": (str, False),
        "features": (ListOf(str), False),
    }, required=True),
    "filters": Table(FILTERS_SPEC),
    "split": Table(SPLIT_SPEC),
    "protocol": Table({
        "metrics": (ListOf(str), False),
        "main_metric": (str, False),
        "mask_valid_at_test": (bool, False),
        "rating_metrics": (ListOf(str), False),
    }),
    "run": Table({"seeds": (ListOf(int), True), "device": (str, False)}, required=True),
    "models": ArrayOf({
        "name": (str, True),
        "label": (str, False),
        "params": Table({}, open=True),
        "grid": Table({}, open=True),
    }, required=True),
}


@dataclass
class ModelEntry:
    name: str
    params: dict
    grid: dict = field(default_factory=dict)
    label: str | None = None

    def configurations(self) -> list[dict]:
        if not self.grid:
            return [dict(self.params)]
        keys = sorted(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            p = dict(self.params)
            p.update(dict(zip(keys, values)))
            out.append(p)
        return out


@dataclass
class Suite:
    path: Path  # the suite.toml
    data: dict
    protocol: Protocol
    models: list[ModelEntry]

    @property
    def name(self) -> str:
        return self.data["suite"]["name"]

    @property
    def version(self) -> int:
        return self.data["suite"]["version"]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def seeds(self) -> list[int]:
        return list(self.data["run"]["seeds"])

    @property
    def dataset(self) -> dict:
        return self.data["dataset"]

    @property
    def device(self) -> str:
        return self.data["run"].get("device", "auto")

    def results_dir(self, override: str | Path | None = None) -> Path:
        """Records of a suite live in ``<suite folder>/<results>`` when the suite names one
        (committed records, checked by CI); else in ``./results``."""
        if override is not None:
            return Path(override)
        rel = self.data["suite"].get("results")
        return (self.folder / rel) if rel else Path("results")

    def card(self):
        from .data.cards import find_card

        card = find_card(f"{self.dataset['name']}@{self.dataset['version']}")
        return card

    def prepare(self, *, mirror: str | None = None, force: bool = False):
        from .data.prepare import prepare

        card = self.card()
        filters = self.data.get("filters", card.filters)
        split = self.data.get("split", card.split)
        ds = prepare(card, filters=filters, split=split, source=self.dataset.get("source"), mirror=mirror,
                     force=force)
        want = self.dataset.get("fingerprint")
        if want and ds.fingerprint != want:
            raise ConfigError(f"prepared dataset fingerprint {ds.fingerprint[:16]}... differs from the suite's "
                              f"{want[:16]}...", where=str(self.path),
                              hint="the data or the preparation changed: make a new suite version")
        return ds


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if path.is_dir():
        path = path / "suite.toml"
    data = load_toml(path)
    validate(data, SUITE_SPEC, where=str(path))
    if not data["run"]["seeds"]:
        raise ConfigError("run.seeds must list at least one seed", where=str(path))
    try:
        protocol = Protocol.from_dict(data.get("protocol", {}))
    except ConfigError as e:
        raise ConfigError(str(e), where=str(path)) from None
    if "split" in data:
        from .data.cards import validate_split

        validate_split(data["split"], str(path))
    models = []
    for m in data["models"]:
        for k, v in m.get("grid", {}).items():
            if not isinstance(v, list) or not v:
                raise ConfigError(f"models '{m['name']}' grid.{k} must be a non-empty list", where=str(path))
        models.append(ModelEntry(m["name"], dict(m.get("params", {})), dict(m.get("grid", {})), m.get("label")))
    return Suite(path, data, protocol, models)


def check_models(suite: Suite) -> None:
    """Every model of the suite must be installed (before anything runs)."""
    from .errors import RegistryError
    from .runner import ModelSpec

    for m in suite.models:
        try:
            spec = ModelSpec.resolve(m.name)
            for p in m.configurations():
                spec.params(p)
        except (RegistryError, ConfigError) as e:
            raise type(e)(str(e), where=str(suite.path)) from None


@dataclass
class Job:
    model: str
    params: dict
    seed: int


def jobs(suite: Suite, only: list[str] | None = None) -> list[Job]:
    out = []
    for m in suite.models:
        if only and m.name not in only:
            continue
        for p in m.configurations():
            for s in suite.seeds:
                out.append(Job(m.name, p, s))
    return out


def run_suite(suite: Suite, *, only: list[str] | None = None, device: str | None = None,
              results: Path | None = None, force: bool = False, echo=print, mirror: str | None = None,
              keep_going: bool = True) -> dict[str, int]:
    """Run every missing job of the suite (existing records are skipped). A failed job is
    recorded as failed and the suite goes on; the counts are returned."""
    from .errors import MMBenchError
    from .runner import run_one

    check_models(suite)
    ds = suite.prepare(mirror=mirror)
    results = suite.results_dir(results)
    counts = {"done": 0, "skipped": 0, "failed": 0, "busy": 0}
    todo = jobs(suite, only)
    for n, job in enumerate(todo, 1):
        grid = len(next(m for m in suite.models if m.name == job.model).configurations()) > 1
        selection = {"method": "grid" if grid else "fixed", "on": "valid"}
        try:
            rec, path, status = run_one(job.model, ds, params=job.params, seed=job.seed,
                                        device=device or suite.device, protocol=suite.protocol, results=results,
                                        suite=suite.name, force=force, selection=selection,
                                        feature_keys=suite.dataset.get("features"))
        except MMBenchError as e:
            counts["failed"] += 1
            echo(f"[{n}/{len(todo)}] {job.model} seed {job.seed}: FAILED {e}")
            if not keep_going:
                raise
            continue
        counts[status] += 1
        main = suite.protocol.main_metric
        value = rec.get("metrics", {}).get("test", {}).get(main) if rec else None
        shown = f"{main}={value:.4f}" if isinstance(value, float) else ""
        echo(f"[{n}/{len(todo)}] {job.model} seed {job.seed}: {status} {shown}".rstrip())
    return counts


def status(suite: Suite, results: Path | None = None) -> list[dict]:
    """One row per job: done / failed (with reason) / missing."""
    from .io import hash_params
    from .records import read_record, record_path
    from .runner import ModelSpec

    rows = []
    results = suite.results_dir(results)
    for job in jobs(suite):
        spec = ModelSpec.resolve(job.model)
        params = spec.params(job.params)
        path = record_path(results, suite.name, suite.dataset["name"], job.model, hash_params(params), job.seed)
        state, why = "missing", ""
        if path.exists():
            try:
                rec = read_record(path)
                state = "done" if rec["status"] == "ok" else "failed"
                why = rec.get("error", "")
            except Exception as e:  # noqa: BLE001
                state, why = "invalid", str(e)
        rows.append({"model": job.model, "params_hash": hash_params(params)[:8], "seed": job.seed,
                     "state": state, "reason": why})
    return rows
