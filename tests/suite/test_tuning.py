"""One tuning budget: the same number of configurations for every model, drawn from the
models' declared search spaces (defaults in the middle), seeded; the definition a version
freezes."""
import itertools

import pytest

from mmbench import registry
from mmbench.errors import ConfigError
from mmbench.models import Param, Recommender, model_params
from mmbench.suite import definition, definition_hash, load_suite
from mmbench.suite.tuning import declared_space, grid_candidates

SPACE = {"lr": [0.25, 0.5, 1.0, 2.0, 4.0], "reg": [0.1, 1.0, 10.0]}
CENTRE = {"lr": 1.0, "reg": 1.0}


def test_the_draw_starts_at_the_defaults_and_is_seeded():
    grid = [dict(zip(("lr", "reg"), v)) for v in itertools.product(SPACE["lr"], SPACE["reg"])]
    got = grid_candidates(SPACE, CENTRE, 4, seed=0, model="bpr")
    assert len(got) == 4 and got[0] == CENTRE
    assert all(c in grid for c in got) and len({tuple(sorted(c.items())) for c in got}) == 4
    assert grid_candidates(SPACE, CENTRE, 4, seed=0, model="bpr") == got  # same seed, same draw
    draws = {tuple(tuple(sorted(c.items())) for c in grid_candidates(SPACE, CENTRE, 4, seed=s, model="bpr"))
             for s in range(20)}
    assert len(draws) > 10  # another seed draws other points
    # a grid no larger than the budget is run whole, the defaults first
    small = grid_candidates({"lr": [0.5, 1.0, 2.0]}, {"lr": 1.0}, 4, seed=0, model="bpr")
    assert small == [{"lr": 1.0}, {"lr": 0.5}, {"lr": 2.0}]


def test_every_builtin_model_declares_a_centred_valid_space():
    """What the baselines declare: an odd number (3 to 7: MMRec's grid of VBPR's reg has 7) of
    increasing values the parameter accepts, the default in the middle; every trained model
    tunes its learning rate."""
    searched = {}
    for name, entry in registry.entries("models").items():
        if entry.distribution != "mmbench":
            continue  # the baselines (a test double may be installed by other tests)
        params = model_params(entry.load())
        for pname, p in params.items():
            if not p.space:
                continue
            values = list(p.space)
            assert 3 <= len(values) <= 7 and len(values) % 2 == 1, (name, pname)
            assert values == sorted(set(values)), (name, pname)
            for v in values:
                assert p.validate(v) == v, (name, pname, v)
            assert values[len(values) // 2] == p.default, (name, pname)
        searched[name] = sorted(k for k, p in params.items() if p.space)
    trained = {n for n, s in searched.items() if "epochs" in model_params(registry.load("models", n))}
    assert all("lr" in searched[n] for n in trained)  # every trained model tunes its learning rate
    assert searched["pop"] == [] and searched["mf"] == ["lr", "reg"]


def test_a_subclass_default_moves_the_space_with_it():
    class Base(Recommender):
        lr = Param(1e-3, gt=0.0, space=(2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3))

    class Faster(Base, lr=5e-3):
        pass

    assert model_params(Faster)["lr"].space == (1.25e-3, 2.5e-3, 5e-3, 1e-2, 2e-2)
    assert model_params(Base)["lr"].space == (2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3)


def test_a_suite_may_not_fix_a_searched_parameter():
    class M(Recommender):
        lr = Param(1e-3, gt=0.0, space=(5e-4, 1e-3, 2e-3))
        dim = Param(8, ge=1)

    assert declared_space(model_params(M), {"dim": 4}, "m") == {"lr": [5e-4, 1e-3, 2e-3]}
    with pytest.raises(ConfigError, match="fixes lr=0.01, a parameter the model declares a search space for"):
        declared_space(model_params(M), {"lr": 0.01}, "m")


SUITE = '''[suite]
name = "budget"
version = 1

[dataset]
name = "ml-100k"
version = "1"

[run]
seeds = [0, 1]
device = "cpu"

[tuning]
configurations = 4
seed = 7

[[models]]
name = "pop"

[[models]]
name = "bpr"
params = { epochs = 5 }

[[models]]
name = "mf"
params = { epochs = 5 }

[[models]]
name = "itemknn-cbf"
'''


def test_every_model_with_a_space_gets_the_same_budget(tmp_path):
    (tmp_path / "suite.toml").write_text(SUITE)
    suite = load_suite(tmp_path)
    counts = {m.key: len(m.configurations()) for m in suite.models}
    # pop declares nothing; bpr's lr ladder (5) and mf's lr x reg (15) give 4 each; itemknn's k has 3 values
    assert counts == {"pop": 1, "bpr": 4, "mf": 4, "itemknn-cbf": 3}
    mf = suite.entry("mf")
    assert mf.method == "grid" and mf.configurations()[0] == {"epochs": 5, "lr": 5e-3, "reg": 0.05}
    assert all(c["epochs"] == 5 for c in mf.configurations())
    d = definition(suite)
    assert d["tuning"] == {"configurations": 4, "method": "grid", "seed": 7} and d["seeds"] == [0, 1]
    assert d["models"][2]["space"] == {"lr": [0.00125, 0.0025, 0.005, 0.01, 0.02], "reg": [0.005, 0.05, 0.5]}
    assert d["models"][1]["params"]["epochs"] == 5 and d["models"][1]["params"]["lr"] == 1e-3
    before = definition_hash(suite)
    (tmp_path / "suite.toml").write_text(SUITE.replace("seed = 7", "seed = 8"))
    assert definition_hash(load_suite(tmp_path)) != before  # the budget is part of the definition
    (tmp_path / "suite.toml").write_text(SUITE.replace("description", "description").replace(
        'name = "budget"', 'name = "budget"\ndescription = "words only"'))
    assert definition_hash(load_suite(tmp_path)) == before  # display text is not


def test_without_a_budget_every_model_runs_its_defaults(tmp_path):
    (tmp_path / "suite.toml").write_text(SUITE.replace("[tuning]\nconfigurations = 4\nseed = 7\n", ""))
    suite = load_suite(tmp_path)
    assert {m.key: m.method for m in suite.models} == dict.fromkeys(["pop", "bpr", "mf", "itemknn-cbf"], "fixed")
