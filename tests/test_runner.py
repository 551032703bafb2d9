"""Bad records and bad plugins: one clear error, a failed record with its reason, nothing corrupt."""
import json
import math

import pytest
import torch

from mmbench.data.cards import find_card
from mmbench.data.prepare import prepare
from mmbench.errors import RecordError, RegistryError, TrainingError
from mmbench.models import Recommender
from mmbench.records import iter_records, read_record, write_record
from mmbench.runner import ModelSpec, run_one

from .helpers import planted_rows, write_card, write_inter


@pytest.fixture
def toy(tmp_path, cards_dir):
    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=20, n_items=15, per_user=8))
    write_card(cards_dir, "toy", tmp_path / "d")
    return prepare(find_card("toy"))


def _spec(cls):
    return ModelSpec(cls.__name__.lower(), cls, "test-plugin", "0.1")


class WrongShape(Recommender):
    def __init__(self):
        pass

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        return self

    def score(self, users):
        return torch.zeros(len(users), 3)


class NoScore(Recommender):
    def __init__(self):
        pass

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        return self


class FitReturnsNone(WrongShape):
    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        return None


class Explodes(WrongShape):
    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        raise ZeroDivisionError("boom")


class NeedsImage(WrongShape):
    requires = ("image",)


@pytest.mark.parametrize("cls,match", [
    (WrongShape, "returned shape"),
    (NoScore, "NotImplementedError"),
    (FitReturnsNone, "must return self"),
    (Explodes, "ZeroDivisionError: boom"),
])
def test_broken_plugins_give_failed_records(toy, tmp_path, cls, match):
    with pytest.raises(TrainingError, match=match):
        run_one(_spec(cls), toy, results=tmp_path / "r")
    rec = read_record(next((tmp_path / "r").rglob("seed0.json")))
    assert rec["status"] == "failed" and match.split(":")[0] in rec["error"]
    assert rec["metrics"] == {}


def test_missing_modality_is_refused_before_training(toy, tmp_path):
    from mmbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"needs modality \['image'\]"):
        run_one(_spec(NeedsImage), toy, results=tmp_path / "r")


def test_plugin_import_error_is_a_registry_error(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("import not_a_module_anywhere\n")
    with pytest.raises(RegistryError, match="importing failed: ModuleNotFoundError"):
        ModelSpec.resolve(f"{f}:Model")


def _record(tmp_path, toy):
    rec, path, _ = run_one("pop", toy, results=tmp_path / "r")
    return rec, path


def test_nan_is_never_written(toy, tmp_path):
    rec, path = _record(tmp_path, toy)
    bad = json.loads(json.dumps(rec))
    bad["metrics"]["test"]["ndcg@10"] = math.nan
    with pytest.raises((RecordError, ValueError), match="not a finite number|non-finite"):
        write_record(path, bad)
    assert read_record(path)["metrics"]["test"]["ndcg@10"] == rec["metrics"]["test"]["ndcg@10"]


@pytest.mark.parametrize("edit,match", [
    (lambda r: r.pop("seed"), "missing field 'seed'"),
    (lambda r: r.update(schema="mmbench.run/0"), "schema is 'mmbench.run/0'"),
    (lambda r: r.update(status="maybe"), "status must be"),
    (lambda r: r["metrics"]["test"].update({"ndcg@10": "high"}), "not a finite number"),
    (lambda r: r["model"].pop("params_hash"), "model.params_hash"),
    (lambda r: r.update(status="failed"), "must say why"),
])
def test_schema_violations_are_named(toy, tmp_path, edit, match):
    rec, path = _record(tmp_path, toy)
    edit(rec)
    path.write_text(json.dumps(rec))
    with pytest.raises(RecordError, match=match) as e:
        read_record(path)
    assert str(path) in str(e.value)
    # a leaderboard never crashes on it: the record is reported, not averaged
    (found,) = [r for p, r in iter_records(tmp_path / "r") if p == path]
    assert isinstance(found, RecordError)


def test_truncated_record_file(toy, tmp_path):
    _, path = _record(tmp_path, toy)
    path.write_text(path.read_text()[:40])
    with pytest.raises(Exception, match="invalid JSON at line"):
        read_record(path)
