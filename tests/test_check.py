"""`mmbench check`: every registered model conforms, and each check catches its violation."""
import numpy as np
import pytest
import torch

from mmbench import registry
from mmbench.check import check_dataset, check_model, temporary_home
from mmbench.errors import ConfigError
from mmbench.models import Recommender

from .conftest import run_cli


@pytest.mark.parametrize("name", list(registry.entries("models")))
def test_every_registered_model_passes(name):
    results = check_model(name)
    failed = [str(r) for r in results if not r.passed]
    assert not failed, failed
    assert {r.check for r in results} >= {"params", "fit returns self", "inputs not mutated", "score shape", "no NaN",
                                          "batch independent", "deterministic", "clone", "modalities"}


# -- deliberately broken models: each breaks one clause ------------------------------------------
class Good(Recommender):
    """Item popularity plus a seeded per-item jitter: conforms to every clause."""

    def __init__(self, jitter: float = 0.1):
        self.jitter = jitter

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        g = torch.Generator().manual_seed(seed)
        pop = torch.as_tensor(data.item_popularity(), dtype=torch.float32)
        self.scores_ = pop + self.jitter * torch.rand(data.n_items, generator=g)
        return self

    def score(self, users):
        return self.scores_.unsqueeze(0).repeat(len(users), 1)


class NotSelf(Good):
    def fit(self, data, features=None, **kw):
        super().fit(data, features, **kw)
        return None


class Mutates(Good):
    def fit(self, data, features=None, **kw):
        data.rating *= 2  # in place: the caller's array changes
        return super().fit(data, features, **kw)


class MutatesFeatures(Good):
    uses = ("text",)

    def fit(self, data, features=None, **kw):
        for f in (features or {}).values():
            f.values[:] = 0.0
        return super().fit(data, features, **kw)


class Nan(Good):
    def score(self, users):
        s = super().score(users)
        s[:, 0] = float("nan")
        return s


class Unseeded(Good):
    def fit(self, data, features=None, *, seed=0, **kw):
        super().fit(data, features, seed=seed, **kw)
        self.scores_ = self.scores_ + torch.rand(data.n_items)  # global RNG, not the seed
        return self


class Reuses(Good):
    def fit(self, data, features=None, **kw):
        super().fit(data, features, **kw)
        self.block_ = None
        return self

    def score(self, users):
        if self.block_ is None or len(self.block_) != len(users):
            self.block_ = super().score(users)
        return self.block_  # the same tensor every call


class WrongShape(Good):
    def score(self, users):
        return super().score(users)[:, :-1]


class BatchDependent(Good):
    def score(self, users):
        s = super().score(users)
        return s + torch.as_tensor(users, dtype=torch.float32).mean()


class Sneaky(Good):
    """Declares no modality but reads whatever features it is given."""

    def fit(self, data, features=None, **kw):
        super().fit(data, features, **kw)
        for f in (features or {}).values():
            self.scores_ = self.scores_ + torch.as_tensor(f.values[:, 0])
        return self


class RequiresTextBadError(Good):
    requires = ("text",)

    def fit(self, data, features=None, **kw):
        text = [f for f in features.values() if f.modality == "text"][0]  # IndexError without text
        return super().fit(data, features, **kw)


class RequiresTextClearError(Good):
    requires = ("text",)

    def fit(self, data, features=None, **kw):
        if not any(f.modality == "text" for f in (features or {}).values()):
            raise ConfigError("needs text", where="model req")
        return super().fit(data, features, **kw)


class AnyContentClearError(Good):
    requires_any = ("text", "image")

    def fit(self, data, features=None, **kw):
        if not any(f.modality in self.requires_any for f in (features or {}).values()):
            raise ConfigError("needs text or image", where="model any")
        return super().fit(data, features, **kw)


class AnyContentIgnored(Good):
    """Declares it needs content but runs (on nothing) without it."""

    requires_any = ("text", "image")


class ChangesParams(Good):
    def __init__(self, jitter: float = 0.1):
        self.jitter = jitter * 2


class KwargsInit(Good):
    def __init__(self, **kwargs):
        self.jitter = kwargs.get("jitter", 0.1)


class BadRating(Good):
    task = "rating"

    def predict(self, users, items):
        return torch.zeros(len(users))


class GoodRating(Good):
    task = "rating"

    def predict(self, users, items):
        return self.scores_[torch.as_tensor(items)]


def _failed(cls):
    return {r.check for r in check_model(cls) if not r.passed}


@pytest.fixture(scope="module")
def tiny():
    with temporary_home():
        yield check_dataset()


@pytest.mark.parametrize("cls, expected", [
    (Good, set()),
    (GoodRating, set()),
    (RequiresTextClearError, set()),
    (AnyContentClearError, set()),
    (AnyContentIgnored, {"modalities"}),
    (NotSelf, {"fit returns self"} | {"inputs not mutated", "score shape", "no NaN", "batch independent",
                                       "deterministic", "clone"}),
    (Mutates, {"inputs not mutated"}),
    (MutatesFeatures, {"inputs not mutated"}),
    (Nan, {"no NaN"}),
    # (it also changes its scores when handed other features: the same refit differs)
    (Unseeded, {"deterministic", "clone", "modalities"}),
    (Reuses, {"score shape"}),
    (WrongShape, {"score shape"}),
    (BatchDependent, {"batch independent"}),
    (Sneaky, {"modalities"}),
    (RequiresTextBadError, {"modalities"}),
    (ChangesParams, {"params", "clone"}),  # the clone is built from the changed parameters
    (KwargsInit, {"params"}),
    (BadRating, {"predict"}),
])
def test_each_check_catches_its_violation(cls, expected, tiny):
    results = check_model(cls, dataset=tiny)
    assert {r.check for r in results if not r.passed} == expected, [str(r) for r in results if not r.passed]


def test_failure_details_say_what_to_fix(tiny):
    by_check = {r.check: r for r in check_model(RequiresTextBadError, dataset=tiny)}
    assert "raise an MMBenchError" in by_check["modalities"].detail and "IndexError" in by_check["modalities"].detail
    by_check = {r.check: r for r in check_model(Sneaky, dataset=tiny)}
    assert "undeclared modalities" in by_check["modalities"].detail


def test_requires_any_is_refused_before_training(tiny):
    """dataset_features (used by `mmbench run` and suites) names the missing group; features
    of modalities outside the declaration are never handed over."""
    from mmbench.runner import dataset_features

    got = dataset_features(AnyContentClearError, tiny, None)
    assert got and {f.modality for f in got.values()} <= {"text", "image"}
    audio_only = [k for k in tiny.features.keys() if k.startswith("audio/")]
    with pytest.raises(ConfigError, match=r"needs at least one content feature \(image, text\)"):
        dataset_features(AnyContentClearError, tiny, audio_only)
    by_check = {r.check: r for r in check_model(AnyContentClearError, dataset=tiny)}
    assert "clear error without any of image/text" in by_check["modalities"].detail


def test_check_params_override_and_fast_defaults(tiny):
    from mmbench.check import _Checker
    from mmbench_baselines.bpr import BPR

    c = _Checker("bpr", BPR, tiny, {"embedding_dim": 4}, "cpu", 0)
    assert c.params() == {"epochs": 2, "batch_size": 128, "patience": 2, "eval_every": 1, "embedding_dim": 4}
    assert all(r.passed for r in check_model(BPR, dataset=tiny, params={"embedding_dim": 4}))


def test_check_dataset_has_what_the_checks_need(tiny):
    from mmbench.synthetic import cold_items

    assert sorted(tiny.features.modalities()) == ["audio", "image", "image_raw", "text", "text_tokens"]
    assert any((~tiny.features.get(k).mask).any() for k in tiny.features.keys())
    assert len(cold_items(tiny)) > 0
    assert len(np.unique(tiny.pairs("train")[2])) > 1  # ratings vary


@pytest.mark.slow
def test_cli_check_table_and_exit_code(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text(
        "import torch\nfrom mmbench.models import Recommender\n\n"
        "class NotSelf(Recommender):\n"
        "    def fit(self, data, features=None, *, seed=0, device='cpu', context=None):\n"
        "        self.n_ = data.n_items\n"
        "    def score(self, users):\n"
        "        return torch.zeros(len(users), self.n_)\n")
    proc = run_cli("check", "pop", "bpr", f"{broken}:NotSelf", "-p", "embedding_dim=4", check=False)
    assert proc.returncode == 1
    rows = {ln.split()[0]: ln for ln in proc.stdout.splitlines()[2:]}
    assert rows["pop"].split()[1:3] == ["9/9", "ok"] and rows["bpr"].split()[1:3] == ["9/9", "ok"]
    # params and modalities pass (no __init__ is fine); the rest fail or are skipped after fit failed
    assert rows[f"{broken}:NotSelf"].split()[1:3] == ["2/9", "FAILED"]
    assert "fit returns self: fit() returned NoneType" in rows[f"{broken}:NotSelf"]
    assert "check(s) failed" in proc.stderr
    typo = run_cli("check", "pop", "-p", "embeding_dim=4", check=False)
    assert typo.returncode == 2 and "embeding_dim" in typo.stderr
    none = run_cli("check", check=False)
    assert none.returncode == 2 and "no model given" in none.stderr
