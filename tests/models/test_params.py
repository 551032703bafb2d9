"""Declared hyper-parameters: construction, validation, coercion, inheritance, and the CLI."""
import json
import math
from pathlib import Path

import pytest

from mmbench import registry
from mmbench.errors import ConfigError
from mmbench.io import hash_params
from mmbench.models import Param, Recommender, model_params
from mmbench.models.params import validate_params

from ..conftest import ROOT, run_cli


class Toy(Recommender):
    dim = Param(8, ge=1, help="size")
    rate = Param(0.5, gt=0.0, le=1.0, help="a share")
    mode = Param("a", choices=("a", "b"), help="which")
    flag = Param(True, help="on or off")
    follows = Param(None, type=int, ge=1, help="None: follows dim")


class Child(Toy, dim=16):
    extra = Param(1.0, ge=0.0)


class NoRate(Toy):
    rate = 0.25  # a plain attribute: not a parameter of this class


def test_defaults_order_and_inheritance():
    assert Toy().get_params() == {"dim": 8, "rate": 0.5, "mode": "a", "flag": True, "follows": None}
    assert list(model_params(Child)) == ["extra", "dim", "rate", "mode", "flag", "follows"]
    assert Child().dim == 16 and Toy().dim == 8  # the class keyword changed the child's default only
    assert "rate" not in model_params(NoRate) and NoRate().rate == 0.25
    with pytest.raises(ConfigError, match="cannot set the default of 'nope'"):
        type("Bad", (Toy,), {}, nope=3)
    with pytest.raises(ConfigError, match="dim=0 is not allowed"):  # a default outside its own range
        type("Bad", (Toy,), {}, dim=0)


@pytest.mark.parametrize("params, message", [
    ({"dim": 0}, "dim=0 is not allowed: must be int >= 1"),
    ({"dim": 2.5}, "dim=2.5 is not allowed: must be int >= 1"),
    ({"dim": True}, "dim=True is not allowed"),
    ({"rate": 0.0}, r"rate=0.0 is not allowed: must be float > 0 and <= 1"),
    ({"rate": math.nan}, "rate=nan is not allowed"),
    ({"rate": math.inf}, "rate=inf is not allowed"),
    ({"rate": "0.1"}, "rate='0.1' is not allowed"),
    ({"mode": "c"}, "mode='c' is not allowed: must be one of 'a', 'b'"),
    ({"flag": 1}, "flag=1 is not allowed: must be bool"),
    ({"follows": 0}, r"follows=0 is not allowed: must be int >= 1 or None"),
    ({"dimm": 3}, r"has no parameter\(s\) \['dimm'\]; did you mean 'dim'\?"),
])
def test_bad_values_are_one_line_naming_parameter_value_and_range(params, message):
    with pytest.raises(ConfigError, match=message) as e:
        Toy(**params)
    assert "\n" not in str(e.value) and str(e.value).startswith("model Toy: ")
    with pytest.raises(ConfigError, match=message):
        Toy().set_params(**params)


def test_values_are_coerced_to_the_declared_type_so_hashes_agree():
    a, b = Toy(dim=16.0, rate=1), Toy(dim=16, rate=1.0)
    assert type(a.dim) is int and type(a.rate) is float
    assert hash_params(a.get_params()) == hash_params(b.get_params())
    assert Toy(follows=None).follows is None and Toy(follows=3).follows == 3


def test_signature_plugins_and_their_errors():
    class Old(Recommender):
        def __init__(self, k: int = 5, name: str = "x"):
            self.k, self.name = k, name

    class Kw(Recommender):
        def __init__(self, **kw):
            pass

    assert {n: p.type for n, p in model_params(Old).items()} == {"k": int, "name": str}
    with pytest.raises(ConfigError, match="k='5' is not allowed: must be int"):
        validate_params(model_params(Old), {"k": "5"}, "model Old")
    with pytest.raises(ConfigError, match=r"__init__ takes \*\*kw: hyper-parameters must be named"):
        model_params(Kw)


def test_every_built_in_model_declares_help_and_valid_defaults():
    for name, entry in registry.entries("models").items():
        for p in model_params(entry.load()).values():
            assert p.help, f"{name}.{p.name} has no help"
            assert p.validate(p.default) == p.default


#: parameters declared since the committed records were made (issue 14.2: feature preprocessing
#: and fine-tuning, tensor fusion's post-fusion depth), and itemknn-cbf's ``normalize``, now ``features``
DECLARED_SINCE = {"features", "pca_dim", "finetune_features", "hidden_layers"}
RENAMED = {"itemknn-cbf": {"normalize": "features"}}


def test_committed_records_keep_their_params_and_hashes():
    """Declarations must not change any committed configuration: every committed record's
    params validate to themselves (plus the parameters declared since, at their defaults)
    and hash to the recorded params_hash."""
    records = sorted(Path(ROOT / "leaderboards").glob("*/records/**/seed*.json"))
    assert records
    classes = {}
    for path in records:
        rec = json.loads(path.read_text())
        name, params = rec["model"]["name"], rec["model"]["params"]
        if name not in classes:
            classes[name] = model_params(registry.load_model_class(name))
        given = {RENAMED.get(name, {}).get(k, k): v for k, v in params.items()}
        got = validate_params(classes[name], given, name)
        assert {k: got[k] for k in given} == given and set(got) - set(given) <= DECLARED_SINCE, path
        assert hash_params(params) == rec["model"]["params_hash"], path


@pytest.mark.parametrize("param, message", [
    ("embedding_dim=0", "embedding_dim=0 is not allowed: must be int >= 1"),
    ("batch_size=-1", "batch_size=-1 is not allowed: must be int >= 1"),
    ("epochs=0", "epochs=0 is not allowed: must be int >= 1"),
    ("lr=NaN", "lr=nan is not allowed: must be float > 0"),
])
def test_cli_refuses_bad_values_before_anything_runs(param, message, tmp_path):
    out = run_cli("run", "-m", "bpr", "-d", "ml-100k", "-p", param, "--results", tmp_path / "r", check=False)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "r").exists()  # no record, not even a failed one
