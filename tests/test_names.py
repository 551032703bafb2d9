"""Names and paths from users and files: one rule each."""
import pytest

from mmbench.errors import ConfigError
from mmbench.names import check_name, inside


@pytest.mark.parametrize("good", ["ml-100k", "lfm2k", "a", "A.b_c-1", "x" * 100])
def test_valid_names(good):
    assert check_name(good, "suite") == good


@pytest.mark.parametrize("bad", ["", ".hidden", "-x", "a/b", "..", "a..b", "x" * 101, "tab\there", "nul\0",
                                 "caf\u00e9", "\u0661\u0662", "a b", "/abs", 5, None])
def test_invalid_names_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match=r"suite .* is not a valid name; use 1-100 ASCII") as e:
        check_name(bad, "suite", where="suite.toml")
    assert "\n" not in str(e.value) and str(e.value).startswith("suite.toml: ")


def test_paths_must_stay_inside_their_root(tmp_path):
    (tmp_path / "root" / "sub").mkdir(parents=True)
    assert inside(tmp_path / "root", "sub/x.json", "record") == (tmp_path / "root" / "sub" / "x.json").resolve()
    for escape in ("../x", "/etc/passwd", "sub/../../x"):
        with pytest.raises(ConfigError, match="points outside"):
            inside(tmp_path / "root", escape, "record")
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="points outside"):
        inside(tmp_path / "root", "link/x", "record")


def test_unusable_paths_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"file 'a\\x00b' is not a usable path \(embedded null byte\)"):
        inside(tmp_path, "a\0b", "file")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(ConfigError, match=r"file 'loop/x' is not a usable path"):
        inside(tmp_path, "loop/x", "file")
