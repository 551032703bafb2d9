"""A suite: a versioned benchmark definition in ``leaderboards/<suite>/suite.toml``.

A suite fixes the dataset (card name + version + expected fingerprint), the data
protocol (filters, split), the evaluation protocol (metrics, main metric, masking), the
seeds, the models with their parameters and one tuning budget (:mod:`.tuning`). This module
reads and checks it (:func:`load_suite`); :mod:`.plan` derives the jobs, :mod:`.execute`
runs them.

Rules. What a leaderboard must prove has grown; each step is a *rules* version, and a
board is built and checked under the rules of its suite (``[suite] rules``, default: the
current ones). ``rules = 1`` only marks a board committed before rules 2 existed (the
leaderboard refuses it for anything else):

1. records fit the suite (dataset, protocol, features, seeds, selection on validation);
   per-model grids or Optuna spaces in ``[[models]]``.
2. one tuning budget (``[tuning]``) over the models' declared search spaces; the suite's
   definition hashed into the board; a manifest of the records' sha256; records from a
   clean tree only (committed boards); every cell certified converged unless the suite is
   a fixed-budget track; rating metrics shown, tested and bounded on one statistic; the
   board's compute time.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ..data.cards import FILTERS_SPEC, SPLIT_SPEC
from ..errors import ConfigError
from ..names import check_name, inside
from ..protocol import Protocol
from ..schema import ArrayOf, ListOf, Table, load_toml, validate

RULES = 2  # the current rules (see the module's docstring)
FIXED_BUDGET = "fixed-budget"  # [suite] track: cells may stop at their epoch budget (the title says so)

SUITE_SPEC = {
    "suite": Table({
        "name": (str, True),
        "version": (int, True),
        "description": (str, False),
        "results": (str, False),  # where records live, relative to the suite folder
        "rules": (int, False),  # the rules its board was built under (default: the current ones)
        "track": (str, False),  # "fixed-budget": convergence is not required
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
    "tuning": Table({  # rules 2: the one tuning budget every searched model gets
        "configurations": (int, True),
        "method": (str, False),  # "grid" (a seeded draw of the declared grid) or "optuna" (seeded TPE)
        "seed": (int, False),
    }),
    "robustness": Table({  # test-time modality drop of every final run (mmbench.robustness)
        "drop": (ListOf(str), True),  # feature keys or modalities, each dropped alone
        "shares": (ListOf(float), True),  # shares p of the items that lose it
        "seed": (int, False),
    }),
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
        "features": (ListOf(str), False),  # the feature keys this entry's model is given (default: the suite's)
    }, required=True),
}
SEARCH_METHODS = ("grid", "optuna")


@dataclass
class ModelEntry:
    name: str
    params: dict
    grid: dict = field(default_factory=dict)  # searched parameter -> values (a grid's space)
    label: str | None = None
    search: str = "grid"
    trials: int = 0
    space: dict = field(default_factory=dict)  # Optuna: parameter -> {choices} or {low, high, log}
    candidates: list[dict] | None = None  # rules 2: the grid points the budget draws (else the whole grid)
    centre: dict | None = None  # rules 2: the searched parameters' declared defaults, tried first
    features: list[str] | None = None  # its own feature keys, sorted (None: the suite's)

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

    @property
    def searched(self) -> list[str]:
        """The parameters a search varies."""
        return sorted(set(self.grid) | set(self.space))

    def configurations(self) -> list[dict]:
        """Every configuration a grid (or a fixed entry) runs, given parameters included."""
        if self.candidates is not None:
            return [{**self.params, **c} for c in self.candidates]
        keys = sorted(self.grid)
        return [{**self.params, **dict(zip(keys, values))}
                for values in itertools.product(*(self.grid[k] for k in keys))]

    def matches(self, params: dict) -> bool:
        """Whether resolved ``params`` (defaults merged) can come from this entry."""
        if self.search != "optuna":
            return any(all(params.get(k) == v for k, v in c.items()) for c in self.configurations())
        if any(params.get(k) != v for k, v in self.params.items() if k not in self.space):
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
    resolved: dict = field(default_factory=dict)  # rules 2: entry key -> model name, parameters, declared space

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
    def rules(self) -> int:
        """The rules its board is built and checked under (see the module's docstring)."""
        return self.data["suite"].get("rules", RULES)

    @property
    def fixed_budget(self) -> bool:
        """A fixed-budget track: cells that stop at their epoch budget are allowed (and marked)."""
        return self.data["suite"].get("track") == FIXED_BUDGET

    @property
    def keeps_records(self) -> bool:
        """Whether its records live with the suite (``[suite] results``: committed, checked by CI)."""
        return bool(self.data["suite"].get("results"))

    @property
    def budget(self) -> dict:
        """The tuning budget: configurations per searched model, method and seed."""
        t = self.data.get("tuning", {})
        return {"configurations": t.get("configurations", 1), "method": t.get("method", "grid"),
                "seed": t.get("seed", 0)}

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
    def features(self) -> list[str]:
        """The feature keys its models read (``[dataset] features``; empty: every stored one)."""
        return list(self.dataset.get("features", []))

    @property
    def device(self) -> str:
        return self.data["run"].get("device", "auto")

    @property
    def robustness(self):
        """The test-time modality drop every final run is evaluated under (a
        :class:`~mmbench.robustness.DropSpec`), or None without a ``[robustness]`` table."""
        from ..robustness import DropSpec

        r = self.data.get("robustness")
        return None if r is None else DropSpec(tuple(r["drop"]), tuple(r["shares"]), r.get("seed", 0))

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
            return inside(self.folder, rel, "suite.results", str(self.path))
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
        if (filters, split) != (card.filters, card.split) and any(k not in ds.features for k in self.features):
            from ..data.prepare import share_features

            share_features(prepare(card, source=self.dataset.get("source"), mirror=mirror), ds, self.features)
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
    _check_header(data, path)
    try:
        protocol = Protocol.from_dict(data.get("protocol", {}))
    except ConfigError as e:
        raise ConfigError(str(e), where=where) from None
    if "split" in data:
        from ..data.cards import validate_split

        validate_split(data["split"], where)
    _check_board(data.get("leaderboard", {}), where)
    drops = None
    if "robustness" in data:
        try:
            drops = Suite(path, data, protocol, []).robustness
        except ConfigError as e:
            raise ConfigError(str(e), where=where) from None
        if data["dataset"].get("features"):
            drops.check(data["dataset"]["features"], where)
    rules = data["suite"].get("rules", RULES)
    models = [_model_entry(m, where, rules) for m in data["models"]]
    seen = set()
    for m in models:
        if m.key in seen:
            raise ConfigError(f"two [[models]] entries are called {m.key!r}", where=where,
                              hint="give each entry of the same model a distinct label")
        seen.add(m.key)
        _check_entry_features(m, data["dataset"].get("features"), drops, where)
    suite = Suite(path, data, protocol, models)
    if rules >= 2:
        from .tuning import apply_budget

        apply_budget(suite)
    return suite


def _check_header(data: dict, path: Path) -> None:
    """The suite's name, rules, track, results folder, seeds and tuning table."""
    where, head = str(path), data["suite"]
    check_name(head["name"], "suite name", where)
    if "results" in head:
        inside(path.parent, head["results"], "suite.results", where)
    rules = head.get("rules", RULES)
    if not 1 <= rules <= RULES:
        raise ConfigError(f"suite.rules must be between 1 and {RULES}, got {rules}", where=where)
    if head.get("track", FIXED_BUDGET) != FIXED_BUDGET:
        raise ConfigError(f"suite.track must be {FIXED_BUDGET!r} (or left out)", where=where)
    if not data["run"]["seeds"]:
        raise ConfigError("run.seeds must list at least one seed", where=where)
    if "search_seeds" in data["run"] and not data["run"]["search_seeds"]:
        raise ConfigError("run.search_seeds must list at least one seed (or be left out)", where=where)
    tuning = data.get("tuning")
    if tuning is not None:
        if rules < 2:
            raise ConfigError("a [tuning] budget needs rules 2 (leave out suite.rules)", where=where)
        if tuning["configurations"] < 1 or tuning.get("method", "grid") not in SEARCH_METHODS:
            raise ConfigError(f"tuning.configurations must be >= 1 and tuning.method one of {list(SEARCH_METHODS)}",
                              where=where)


def _check_board(board: dict, where: str) -> None:
    from ..stats import TESTS

    if board.get("test", "t-test") not in TESTS:
        raise ConfigError(f"leaderboard.test must be one of {list(TESTS)}", where=where)
    if not 0 < board.get("alpha", 0.05) < 1 or not 0 < board.get("confidence", 0.95) < 1:
        raise ConfigError("leaderboard.alpha and leaderboard.confidence must lie in (0, 1)", where=where)


def _check_entry_features(entry: ModelEntry, listed: list[str] | None, drops, where: str) -> None:
    """An entry's own feature keys: at least one, each among the suite's ``listed`` ones when
    it lists them, and every name the suite's ``[robustness]`` table ``drops`` among them."""
    if entry.features is None:
        return
    if not entry.features:
        raise ConfigError(f"models {entry.key!r} features must list at least one feature key (or be left out)",
                          where=where)
    stray = sorted(set(entry.features) - set(listed)) if listed is not None else []
    if stray:
        raise ConfigError(f"models {entry.key!r} features: {stray[0]!r} is not one of [dataset] features {listed}",
                          where=where, hint="add it to [dataset] features or leave it out of the entry")
    if drops is not None:
        try:
            drops.check(entry.features)
        except ConfigError as e:
            raise ConfigError(f"models {entry.key!r}: {e}", where=where) from None


def _model_entry(m: dict, where: str, rules: int) -> ModelEntry:
    name = m["name"]
    if name.endswith(".py") or ".py:" in name:
        raise ConfigError(f"models {name!r}: a suite names registered models only (a file would run local code)",
                          where=where, hint="register the model through an entry point, or run the file from "
                                            "the command line: mmbench run -m FILE.py:Class")
    check_name(name, "model", where)
    if rules >= 2:
        given = sorted(k for k in ("grid", "search", "trials", "space") if k in m)
        if given:
            raise ConfigError(f"models '{name}' has its own {given[0]!r}: every model gets the suite's [tuning] "
                              "budget over its declared search space", where=where,
                              hint="remove it (search spaces are declared with the model's parameters)")
        return ModelEntry(name, dict(m.get("params", {})), label=m.get("label"), features=_features(m))
    for k, v in m.get("grid", {}).items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"models '{name}' grid.{k} must be a non-empty list", where=where)
    search = m.get("search", "grid")
    if search not in SEARCH_METHODS:
        raise ConfigError(f"models '{name}' search must be one of {list(SEARCH_METHODS)}", where=where)
    if search == "optuna":
        if not m.get("space") or m.get("trials", 0) < 1 or m.get("grid"):
            raise ConfigError(f"models '{name}': an Optuna search needs a 'space' table and trials >= 1 "
                              "(and no grid)", where=where)
        _check_space(name, m["space"], where)
    elif m.get("space") or "trials" in m:
        raise ConfigError(f"models '{name}': 'space' and 'trials' need search = \"optuna\"", where=where)
    return ModelEntry(name, dict(m.get("params", {})), dict(m.get("grid", {})), m.get("label"),
                      search, int(m.get("trials", 0)), dict(m.get("space", {})), features=_features(m))


def _features(m: dict) -> list[str] | None:
    """An entry's own feature keys, sorted (the order a model is given them never matters)."""
    return sorted(set(m["features"])) if "features" in m else None
