"""Entry-point registry with fake plugin distributions (dist-info folders on sys.path)."""
import subprocess
import sys
import textwrap

import pytest

from mmbench import registry
from mmbench.errors import RegistryError

from .conftest import ROOT


def make_dist(root, name, version, entry_points: dict[str, str], module_code: dict[str, str] | None = None):
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[mmbench.models]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for mod, code in (module_code or {}).items():
        (root / f"{mod}.py").write_text(textwrap.dedent(code))
    return root


GOOD = """
from mmbench.models import Recommender
import torch
class Const(Recommender):
    def __init__(self, value: float = 1.0):
        self.value = value
    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        self.n_items_ = data.n_items
        return self
    def score(self, users):
        return torch.full((len(users), self.n_items_), self.value)
"""


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_registered_through_entry_points():
    names = registry.entries("models")
    assert {"pop", "bpr", "mf"} <= set(names)
    assert names["bpr"].distribution == "mmbench"


def test_plugin_is_listed_and_loaded(plugin_path):
    make_dist(plugin_path, "fake-plugin", "0.3", {"const": "fake_mod:Const"}, {"fake_mod": GOOD})
    e = registry.get_entry("models", "const")
    assert (e.distribution, e.version) == ("fake-plugin", "0.3")
    assert "fake_mod" not in sys.modules  # listing is lazy
    cls = e.load()
    assert cls().get_params() == {"value": 1.0}


def test_did_you_mean():
    with pytest.raises(RegistryError, match="unknown model 'bprr'.*did you mean 'bpr'"):
        registry.get_entry("models", "bprr")


def test_duplicate_name_names_both_distributions(plugin_path):
    make_dist(plugin_path, "other-dist", "1.0", {"bpr": "x_mod:BPR"})
    with pytest.raises(RegistryError, match=r"'bpr'.*registered twice.*(mmbench.*other-dist|other-dist.*mmbench)"):
        registry.entries("models")


def test_broken_plugin_is_reported_without_breaking_the_list(plugin_path):
    make_dist(plugin_path, "broken-dist", "0.1", {"broken": "broken_mod:Model"},
              {"broken_mod": "raise ImportError('needs libfoo')\n"})
    make_dist(plugin_path / "x", "missing-dist", "0.1", {"ghost": "no_such_module:Model"})
    sys.path.insert(0, str(plugin_path / "x"))
    try:
        with pytest.raises(RegistryError, match="broken-dist 0.1 is broken: ImportError: needs libfoo"):
            registry.load("models", "broken")
        env = {"PYTHONPATH": f"{plugin_path}:{plugin_path / 'x'}:{ROOT}"}
        out = subprocess.run([sys.executable, "-m", "mmbench", "models", "list", "--check"], capture_output=True,
                             text=True, env={**__import__("os").environ, **env})
        assert out.returncode == 0, out.stderr
        lines = {ln.split()[0]: ln for ln in out.stdout.splitlines()}
        assert "needs libfoo" in lines["broken"]
        assert "broken: module 'no_such_module' not found" in lines["ghost"]
        assert lines["bpr"].rstrip().endswith("ok")
    finally:
        sys.path.remove(str(plugin_path / "x"))


def test_model_from_explicit_file(tmp_path):
    f = tmp_path / "mymodel.py"
    f.write_text(GOOD)
    cls = registry.load_model_class(f"{f}:Const")
    assert cls.__name__ == "Const"
    with pytest.raises(RegistryError, match="no class 'Nope'"):
        registry.load_model_class(f"{f}:Nope")
