"""One tuning budget for every model of a suite, and the definition a suite version freezes.

Under rules 2 a suite does not choose search spaces model by model. Its ``[tuning]`` table
says how many configurations every searched model gets (``configurations``, default 1:
every model runs its declared defaults), how they are chosen (``method``) and a ``seed``;
each model's search space is the one its parameters declare (``Param(..., space=(...))``,
the paper's default in the middle). A parameter with a declared space may not be fixed
by the suite, so no model is tuned less than the others.

- ``grid``: the declared defaults first, then ``configurations - 1`` more points of the
  grid (the product of the declared values) drawn without replacement by a generator
  seeded with (seed, model name); a grid smaller than the budget is run whole.
- ``optuna``: Optuna's TPE sampler, seeded, over the declared values, for
  ``configurations`` trials, the defaults enqueued as the first trial.

Candidates run on the search seeds and are compared on validation (:mod:`.plan`).

:func:`definition` is everything a suite version's numbers depend on: dataset, data and
evaluation protocol, seeds, device, budget and, for every model, its resolved parameters,
declared search space and the feature keys of an entry that names its own. A leaderboard
stores its hash; a committed ``v<N>/`` whose definition changed fails ``leaderboard
check`` (a change needs ``v<N+1>/``).
"""
from __future__ import annotations

import itertools
import random

from ..errors import ConfigError, RegistryError
from ..io import hash_params


def declared_space(params: dict, fixed: dict, where: str) -> dict[str, list]:
    """The searched parameters and their values: every declared parameter with a space.
    Fixing one of them in the suite is refused (that model would be tuned less)."""
    space = {name: list(p.space) for name, p in params.items() if p.space}
    clash = sorted(set(space) & set(fixed))
    if clash:
        raise ConfigError(f"fixes {clash[0]}={fixed[clash[0]]!r}, a parameter the model declares a search space "
                          f"for {space[clash[0]]}", where=where,
                          hint="leave it out of params: the suite's [tuning] budget searches it for every model")
    for name, values in space.items():
        for v in values:
            params[name].validate(v, where)
    return space


def grid_candidates(space: dict[str, list], centre: dict, n: int, seed: int, model: str) -> list[dict]:
    """``n`` points of the grid spanned by ``space``: ``centre`` first, the others drawn
    without replacement (generator seeded with ``seed`` and ``model``); all when fewer."""
    keys = sorted(space)
    points = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    others = [p for p in points if p != centre]
    if len(others) > n - 1:
        others = random.Random(f"{seed}:{model}").sample(others, n - 1)
    return [centre] + others


def apply_budget(suite) -> None:
    """Give every model entry of a rules-2 suite its configurations: resolve the model,
    read its declared space, draw the candidates (grid) or set up the study (optuna);
    ``suite.resolved`` keeps each entry's parameters, space and own feature keys (when it
    names them) for :func:`definition`."""
    from ..models import model_params
    from ..runner import ModelSpec

    budget = suite.budget
    for entry in suite.models:
        where = f"model {entry.name!r}"
        try:
            spec = ModelSpec.resolve(entry.name)
            resolved = spec.params(entry.params)
            space = declared_space(model_params(spec.cls), entry.params, where)
        except (RegistryError, ConfigError) as e:
            raise type(e)(str(e), where=str(suite.path)) from None
        suite.resolved[entry.key] = {"name": entry.name, "params": resolved, "space": space,
                                     **({"features": entry.features} if entry.features is not None else {})}
        if not space or budget["configurations"] == 1:
            continue
        entry.centre = {k: resolved[k] for k in sorted(space)}
        if budget["method"] == "optuna":
            entry.search, entry.trials = "optuna", budget["configurations"]
            entry.space = {k: {"choices": v} for k, v in space.items()}
        else:
            entry.grid = space
            entry.candidates = grid_candidates(space, entry.centre, budget["configurations"], budget["seed"],
                                               entry.name)


def definition(suite) -> dict:
    """What a version of a rules-2 suite freezes (labels and description are display only;
    filters and split the suite leaves to the dataset card are pinned by the fingerprint)."""
    return {
        "rules": suite.rules, "suite": suite.name, "track": suite.data["suite"].get("track", "converged"),
        "dataset": dict(sorted(suite.dataset.items())),
        "filters": suite.data.get("filters", "the card's"), "split": suite.data.get("split", "the card's"),
        "protocol": suite.protocol.as_dict(), "seeds": suite.seeds, "search_seeds": suite.search_seeds,
        "device": suite.device, "tuning": suite.budget, "significance": suite.board,
        "models": [dict(r) for r in suite.resolved.values()],
        **({"robustness": suite.robustness.as_dict()} if suite.robustness else {}),
    }


def definition_hash(suite) -> str:
    return hash_params(definition(suite))
