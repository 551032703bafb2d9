"""The fork server that CLI tests use (tests/forkcli.py) gives what a fresh ``python -m mmbench``
gives: the same exit status, stdout and stderr, the same environment and working directory."""
import os

import pytest

from .forkcli import SERVER, fresh_mmbench, run_mmbench


@pytest.fixture(autouse=True)
def _the_server_even_when_cli_tests_startfresh_mmbench(monkeypatch):
    monkeypatch.delenv("MMBENCH_TEST_FRESH_CLI", raising=False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("args", [["models", "list"], ["run", "-m", "bprr", "-d", "ml-100k"], ["nosuchcommand"],
                                  ["datasets", "list"]])
def test_forked_command_equals_a_fresh_process(args, tmp_path):
    env = dict(os.environ)
    assert SERVER.serves(env)
    forked, fresh = run_mmbench(args, env, cwd=tmp_path), fresh_mmbench(args, env, cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == (0 if args[0] in ("models", "datasets") else 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_environment_working_directory_and_pythonpath_are_the_commands(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    # a module on PYTHONPATH that prints the working directory and a variable only this command has
    (site / "probe_mod.py").write_text("import os\nprint('probe', os.getcwd(), os.environ['PROBE'])\n")
    env = dict(os.environ, PROBE="42", PYTHONPATH=str(site))
    work = tmp_path / "work"
    work.mkdir()
    # `mmbench check FILE:Class` runs FILE, which imports the module from PYTHONPATH, then fails
    # to find the class
    (work / "model.py").write_text("import probe_mod\n")
    forked = run_mmbench(["check", "model.py:Nope"], env, cwd=work)
    fresh = fresh_mmbench(["check", "model.py:Nope"], env, cwd=work)
    assert f"probe {work} 42" in forked.stdout, (forked.stdout, forked.stderr)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_load_time_variables_of_a_command_run_apart():
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE" if os.environ.get("OMP_WAIT_POLICY") != "ACTIVE" else "PASSIVE")
    assert not SERVER.serves(env)
    assert SERVER.serves(dict(os.environ))
