"""A suite: a versioned benchmark definition in ``leaderboards/<suite>/suite.toml``.

A suite fixes the dataset (card name + version + expected fingerprint), the data
protocol (filters, split), the evaluation protocol (metrics, main metric, masking), the
seeds and the models with their parameters or search spaces. This module reads and checks
it (:func:`load_suite`); :mod:`.plan` derives the jobs, :mod:`.execute` runs them.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ..data.cards import FILTERS_SPEC, SPLIT_SPEC
from ..errors import ConfigError
from ..protocol import Protocol
from ..schema import ArrayOf, ListOf, Table, load_toml, validate

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
        "feature_fingerprints": Table({}, open=True),
    }, required=True),
    "filters": Table(FILTERS_SPEC),
    "split": Table(SPLIT_SPEC),
    "protocol": Table({
        "metrics": (ListOf(str), False),
        "main_metric": (str, False),
        "mask_valid_at_test": (bool, False),
        "rating_metrics": (ListOf(str), False),
    }),
    "run": Table({"seeds": (ListOf(int), True), "device": (str, False), "search_seeds": (ListOf(int), False)},
                 required=True),
    "leaderboard": Table({
        "test": (str, False),  # significance test for the marks: t-test, wilcoxon or fisher
        "alpha": (float, False),
        "confidence": (float, False),
    }),
    "models": ArrayOf({
        "name": (str, True),
        "label": (str, False),
        "params": Table({}, open=True),
        "grid": Table({}, open=True),
        "search": (str, False),  # "grid" (default) or "optuna"
        "trials": (int, False),
        "space": Table({}, open=True),
    }, required=True),
}
SEARCH_METHODS = ("grid", "optuna")


@dataclass
class ModelEntry:
    name: str
    params: dict
    grid: dict = field(default_factory=dict)
    label: str | None = None
    search: str = "grid"
    trials: int = 0
    space: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What identifies the entry in the suite and the leaderboard (label, else name)."""
        return self.label or self.name

    @property
    def method(self) -> str:
        """How the configuration is chosen: fixed, grid or optuna."""
        if self.search == "optuna":
            return "optuna"
        return "grid" if len(self.configurations()) > 1 else "fixed"

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

    def matches(self, params: dict) -> bool:
        """Whether resolved ``params`` (defaults merged) can come from this entry."""
        for k, v in self.params.items():
            if k in self.grid or k in self.space:
                continue
            if k not in params or params[k] != v:
                return False
        for k, values in self.grid.items():
            if params.get(k) not in values:
                return False
        for k, dist in self.space.items():
            v = params.get(k)
            if "choices" in dist:
                if v not in dist["choices"]:
                    return False
            elif not isinstance(v, (int, float)) or not dist["low"] <= v <= dist["high"]:
                return False
        return True


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
    def search_seeds(self) -> list[int]:
        return list(self.data["run"].get("search_seeds", self.seeds[:1]))

    @property
    def dataset(self) -> dict:
        return self.data["dataset"]

    @property
    def device(self) -> str:
        return self.data["run"].get("device", "auto")

    @property
    def board(self) -> dict:
        """Leaderboard settings: significance test, alpha, confidence level."""
        b = self.data.get("leaderboard", {})
        return {"test": b.get("test", "t-test"), "alpha": float(b.get("alpha", 0.05)),
                "confidence": float(b.get("confidence", 0.95))}

    def entry(self, key: str) -> ModelEntry:
        return next(m for m in self.models if m.key == key)

    def results_dir(self, override: str | Path | None = None) -> Path:
        """Records of a suite live in ``<suite folder>/<results>`` when the suite names one
        (committed records, checked by CI); else in ``$MMBENCH_RESULTS`` (default
        ``./results``), as for ``mmbench run``."""
        if override is not None:
            return Path(override)
        rel = self.data["suite"].get("results")
        if rel:
            return self.folder / rel
        from ..paths import default_results_dir

        return default_results_dir()

    def card(self):
        from ..data.cards import find_card

        card = find_card(f"{self.dataset['name']}@{self.dataset['version']}")
        return card

    def prepare(self, *, mirror: str | None = None, force: bool = False):
        from ..data.prepare import prepare

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


def _check_space(name: str, space: dict, where: str) -> None:
    for k, d in space.items():
        ok = isinstance(d, dict) and (
            (set(d) == {"choices"} and isinstance(d["choices"], list) and d["choices"])
            or ({"low", "high"} <= set(d) <= {"low", "high", "log"}
                and all(isinstance(d[x], (int, float)) and not isinstance(d[x], bool) for x in ("low", "high"))
                and d["low"] < d["high"] and isinstance(d.get("log", False), bool)))
        if not ok:
            raise ConfigError(f"models '{name}' space.{k} must be {{ choices = [...] }} or "
                              "{ low = ..., high = ..., log = true|false } with low < high", where=where)


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if path.is_dir():
        path = path / "suite.toml"
    data = load_toml(path)
    where = str(path)
    validate(data, SUITE_SPEC, where=where)
    if not data["run"]["seeds"]:
        raise ConfigError("run.seeds must list at least one seed", where=where)
    if "search_seeds" in data["run"] and not data["run"]["search_seeds"]:
        raise ConfigError("run.search_seeds must list at least one seed (or be left out)", where=where)
    try:
        protocol = Protocol.from_dict(data.get("protocol", {}))
    except ConfigError as e:
        raise ConfigError(str(e), where=where) from None
    if "split" in data:
        from ..data.cards import validate_split

        validate_split(data["split"], where)
    _check_board(data.get("leaderboard", {}), where)
    models = [_model_entry(m, where) for m in data["models"]]
    seen = set()
    for m in models:
        if m.key in seen:
            raise ConfigError(f"two [[models]] entries are called {m.key!r}", where=where,
                              hint="give each entry of the same model a distinct label")
        seen.add(m.key)
    return Suite(path, data, protocol, models)


def _check_board(board: dict, where: str) -> None:
    from ..stats import TESTS

    if board.get("test", "t-test") not in TESTS:
        raise ConfigError(f"leaderboard.test must be one of {list(TESTS)}", where=where)
    if not 0 < board.get("alpha", 0.05) < 1 or not 0 < board.get("confidence", 0.95) < 1:
        raise ConfigError("leaderboard.alpha and leaderboard.confidence must lie in (0, 1)", where=where)


def _model_entry(m: dict, where: str) -> ModelEntry:
    for k, v in m.get("grid", {}).items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"models '{m['name']}' grid.{k} must be a non-empty list", where=where)
    search = m.get("search", "grid")
    if search not in SEARCH_METHODS:
        raise ConfigError(f"models '{m['name']}' search must be one of {list(SEARCH_METHODS)}", where=where)
    if search == "optuna":
        if not m.get("space") or m.get("trials", 0) < 1 or m.get("grid"):
            raise ConfigError(f"models '{m['name']}': an Optuna search needs a 'space' table and trials >= 1 "
                              "(and no grid)", where=where)
        _check_space(m["name"], m["space"], where)
    elif m.get("space") or "trials" in m:
        raise ConfigError(f"models '{m['name']}': 'space' and 'trials' need search = \"optuna\"", where=where)
    return ModelEntry(m["name"], dict(m.get("params", {})), dict(m.get("grid", {})), m.get("label"),
                      search, int(m.get("trials", 0)), dict(m.get("space", {})))


def recorded_name(name: str) -> str:
    """The model name a record carries for a suite entry: the registered name, or
    ``<file stem>:<Class>`` for a ``path/to/file.py:Class`` entry (as the runner names it)."""
    if name.endswith(".py") or ".py:" in name:
        path, _, cls = name.partition(":")
        return f"{Path(path).stem}:{cls}"
    return name
