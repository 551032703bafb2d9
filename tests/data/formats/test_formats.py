"""The format registry: built-ins registered like plugins, lookups with clear errors, cards checked against it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from mmbench import registry
from mmbench.data.cards import find_card
from mmbench.data.formats import Format, get_format
from mmbench.errors import ConfigError, RegistryError

from .common import CARD_HEAD

BUILTIN = {"recbole", "mmrec", "movielens-raw", "hetrec-lastfm", "microlens"}


def test_builtins_register_through_entry_points():
    entries = registry.entries("formats")
    assert BUILTIN <= set(entries)
    for name in BUILTIN:
        assert entries[name].distribution == "mmbench"
        assert entries[name].value.startswith("mmbench.data.formats.")
        assert isinstance(get_format(name), Format)
    # only MMRec and RecBole layouts can be imported and exported
    assert {n for n in BUILTIN if hasattr(get_format(n), "detect")} == {"mmrec", "recbole"}
    assert {n for n in BUILTIN if hasattr(get_format(n), "write")} == {"mmrec", "recbole"}


def test_lookup_errors_say_what_would_do():
    with pytest.raises(RegistryError, match=r"unknown dataset format 'mmrc'; did you mean 'mmrec'\?"):
        get_format("mmrc")
    with pytest.raises(ConfigError, match=r"format 'hetrec-lastfm' cannot be exported .*formats that can: mmrec, "
                                          r"recbole"):
        get_format("hetrec-lastfm", "write")
    with pytest.raises(RegistryError, match="formats that can be imported: mmrec, recbole"):
        get_format("zzz", "detect")


def test_an_entry_point_that_is_not_a_format(tmp_path, monkeypatch):
    info = tmp_path / "bad_fmt-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-fmt\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mmbench.formats]\nbad = bad_fmt_mod:reader\n")
    (tmp_path / "bad_fmt_mod.py").write_text("def reader(card, folder):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match=r"format 'bad' \(bad_fmt_mod:reader, from bad-fmt\) is not a Format"):
        get_format("bad")


def test_card_format_must_be_registered(tmp_path, cards_dir):
    (cards_dir / "c.toml").write_text(CARD_HEAD.format(name="c", fmt="mmrecc", path=tmp_path.as_posix()) +
                                      '[files]\ninteractions = "c.inter"\n[split]\nmethod = "random_loo"\n')
    with pytest.raises(ConfigError, match=r"c\.toml: dataset\.format 'mmrecc' is not a registered dataset format; "
                                          r"did you mean 'mmrec'\?"):
        find_card("c")


@pytest.mark.parametrize("command", ["import", "export"])
def test_help_imports_no_format(command):
    code = (f"import sys\nfrom mmbench.cli import main\ntry:\n    main(['{command}', '--help'])\nexcept SystemExit:\n"
            f"    pass\nprint(sorted(m for m in sys.modules if m.startswith('mmbench.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--format FORMAT" in out.stdout or "--to FORMAT" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
