"""``mmbench run``'s test-time modality drop options and what ``models info`` says about
cold items: one clear line for bad input, before anything is prepared."""
import pytest

from ..conftest import run_cli


@pytest.mark.parametrize("args,match", [
    (["--drop-share", "0,1"], "--drop-share needs --drop-modality"),
    (["--drop-modality", "text", "--drop-share", "0,x"], "--drop-share '0,x' is not a comma-separated list"),
    (["--drop-modality", "text", "--drop-share", "0,2"], r"robustness shares must be distinct numbers in [0, 1]"),
    (["--drop-modality", "text", "--drop-modality", "text"], "robustness keys must be distinct"),
])
def test_bad_drop_options(args, match, session_home, tmp_path):
    out = run_cli("run", "-m", "vbpr", "-d", "ml-100k", *args, env={"MMBENCH_HOME": str(session_home)},
                  check=False, cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and match in lines[0], out.stderr
    assert not (tmp_path / "results").exists()


def test_models_info_says_how_cold_items_are_ranked(session_home):
    env = {"MMBENCH_HOME": str(session_home)}
    pop = run_cli("models", "info", "pop", env=env).stdout
    assert "cold items: cannot score an item without training interactions" in pop
    assert "popularity 0 for Pop (below every warm item, ties by item index)" in pop
    assert "cold items: scored from its item content" in run_cli("models", "info", "vbpr", env=env).stdout
