"""Submitting a method as a plugin: scaffold, install, conformance checks, suite, leaderboard."""
import json
import os
import shutil
import subprocess
import sys

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from mmbench.errors import ConfigError
from mmbench.plugin import names, scaffold

from .conftest import ROOT, run_cli
from .helpers import planted_rows, write_card, write_inter

EXAMPLE = ROOT / "examples" / "mmbench-example-itemknn"


def test_scaffold_writes_an_installable_package(tmp_path):
    root, files = scaffold("my-model", tmp_path)
    assert root == tmp_path / "mmbench-my-model"
    assert sorted(p.relative_to(root).as_posix() for p in files) == [
        "README.md", "mmbench_my_model/__init__.py", "mmbench_my_model/model.py", "pyproject.toml",
        "tests/test_mmbench_my_model.py"]
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "mmbench-my-model" and meta["project"]["version"] == "0.1.0"
    assert meta["project"]["entry-points"]["mmbench.models"] == {"my-model": "mmbench_my_model.model:MyModel"}
    assert meta["tool"]["setuptools"]["packages"] == ["mmbench_my_model"]
    model = (root / "mmbench_my_model" / "model.py").read_text()
    compile(model, "model.py", "exec")
    assert "class MyModel(ContentRecommender" in model and "from mmbench.models import" in model
    assert '"check", "my-model"' in (root / "tests" / "test_mmbench_my_model.py").read_text()
    with pytest.raises(ConfigError, match="folder already exists"):
        scaffold("my-model", tmp_path)


@pytest.mark.parametrize("bad", ["My Model", "1model", "model!", "-x", "a--b"])
def test_plugin_names_are_checked(bad):
    with pytest.raises(ConfigError, match="must be lower-case"):
        names(bad)
    assert names("knn_2")["package"] == "mmbench_knn_2" and names("knn_2")["dist"] == "mmbench-knn-2"


def _install(src, target):
    """pip install into a folder of its own (PYTHONPATH), not into the shared environment."""
    work = target.parent / ("src-" + src.name)
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(work)], check=True, capture_output=True, text=True)
    return {"PYTHONPATH": str(target) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow
def test_scaffolded_plugin_passes_mmbench_check(tmp_path):
    root, _ = scaffold("tiny-mm", tmp_path)
    env = _install(root, tmp_path / "site")
    listed = run_cli("models", "list", env=env)
    assert any(line.startswith("tiny-mm ") and "mmbench-tiny-mm 0.1.0" in line for line in listed.stdout.splitlines())
    out = run_cli("check", "tiny-mm", env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_example_plugin_end_to_end(tmp_path):
    env = _install(EXAMPLE, tmp_path / "site")
    env["MMBENCH_HOME"] = str(tmp_path / "home")
    out = run_cli("check", "example-itemknn", env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    # a suite with the plugin next to a built-in baseline, on a tiny planted dataset
    cards = tmp_path / "cards"
    cards.mkdir()
    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=50, n_items=30, per_user=10, seed=4))
    write_card(cards, "toy", tmp_path / "d")
    env["MMBENCH_CARDS"] = str(cards)
    env["MMBENCH_RESULTS"] = str(tmp_path / "results")  # not a committed board: the tree may be dirty here
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.toml").write_text('''[suite]
name = "plugin-suite"
version = 1

[dataset]
name = "toy"
version = "1"

[protocol]
metrics = ["ndcg@10", "recall@10"]
main_metric = "ndcg@10"

[run]
seeds = [0, 1]
device = "cpu"

[[models]]
name = "pop"

[tuning]
configurations = 2

[[models]]
name = "example-itemknn"
''')
    ran = run_cli("suite", "run", suite, env=env)
    assert "done=6" in ran.stdout, ran.stdout
    run_cli("leaderboard", "build", suite, "--quiet", env=env)
    board = json.loads((suite / "v1" / "leaderboard.json").read_text())
    row = next(r for r in board["rows"] if r["model"] == "example-itemknn")
    assert (row["distribution"], row["version"]) == ("mmbench-example-itemknn", "0.1.0")
    assert row["selection"]["method"] == "grid" and len(row["selection"]["candidates"]) == 2
    md = (suite / "v1" / "README.md").read_text()
    assert "(`example-itemknn` from mmbench-example-itemknn 0.1.0)" in md
    assert "mmbench-example-itemknn 0.1.0" in (suite / "v1" / "index.html").read_text()
