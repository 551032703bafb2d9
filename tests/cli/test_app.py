"""The command group's last resort: whatever escapes a command is still one line and a non-zero exit."""
import errno
import os

import click
import pytest
from click.testing import CliRunner

from mmbench.cli.app import Group, parse_params
from mmbench.errors import MMBenchError

from ..helpers import fail_os_call, planted_rows, write_card, write_inter


def _group(exc):
    @click.group(cls=Group)
    def g():
        pass

    @g.command()
    def boom():
        raise exc

    return g


@pytest.mark.parametrize("exc,code,line", [
    (MMBenchError("bad value", where="f.toml:3"), 2, "error: f.toml:3: bad value\n"),
    (OSError(28, "No space left on device", "/data/x.npy"), 1,
     "error: /data/x.npy: cannot complete the operation: No space left on device; free some space (or point "
     "MMBENCH_HOME / --results elsewhere) and rerun\n"),
    (MemoryError("cannot allocate 9 TB"), 1, "error: out of memory (cannot allocate 9 TB); free memory or use a "
                                            "smaller input\n"),
    (TypeError("a bug\nover two lines"), 1, "error: internal error: TypeError: a bug over two lines; this is a bug in "
                                           "mmbench or a plugin: please report it (set MMBENCH_TRACEBACK=1 to see "
                                           "the traceback)\n"),
])
def test_every_error_is_one_line(exc, code, line):
    r = CliRunner().invoke(_group(exc), ["boom"], env={"MMBENCH_TRACEBACK": None})
    assert (r.exit_code, r.stderr) == (code, line)


def test_traceback_on_request():
    r = CliRunner().invoke(_group(TypeError("a bug")), ["boom"], env={"MMBENCH_TRACEBACK": "1"})
    assert isinstance(r.exception, TypeError)


@pytest.mark.parametrize("pairs,expected", [
    (("embedding_dim=64", "lr=0.1", "name=abc", "grid=[1, 2]"), {"embedding_dim": 64, "lr": 0.1, "name": "abc",
                                                               "grid": [1, 2]}),
    (("x= 5 ",), {"x": 5}), (("deep=" + "[" * 3000,), {"deep": "[" * 3000}),
])
def test_param_parser(pairs, expected):
    assert parse_params(pairs) == expected


@pytest.mark.parametrize("pair", ["=5", "a", "a b=1", "1a=2", "caf\u00e9=1", "x=\ud800"])
def test_param_parser_refuses(pair):
    with pytest.raises(MMBenchError) as e:
        parse_params((pair,))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS], ids=errno.errorcode.get)
@pytest.mark.parametrize("call", ["mkdir", "open", "replace"])
def test_an_unwritable_or_read_only_data_home_is_one_line(tmp_path, cards_dir, monkeypatch, call, code):
    """`mmbench prepare` where the data home may not be written (permission denied, read-only; as
    root only simulated: helpers.fail_os_call): one `error:` line naming the data home with the
    errno's text, a non-zero exit, no traceback; no prepared dataset, staging folder or temp left."""
    from mmbench.cli import main

    write_inter(tmp_path / "d" / "toy.inter", planted_rows(n_users=40, n_items=30, per_user=8))
    write_card(cards_dir, "toy", tmp_path / "d")
    home = tmp_path / "home"
    fail_os_call(monkeypatch, call, code)
    r = CliRunner().invoke(main, ["prepare", "toy"], env={"MMBENCH_TRACEBACK": None})
    monkeypatch.undo()
    lines = r.stderr.splitlines()
    assert r.exit_code not in (0, None) and isinstance(r.exception, SystemExit), r.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {home}"), r.stderr
    assert f"cannot write: {os.strerror(code)}; choose a" in lines[0] and "Traceback" not in r.output, r.stderr
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() or ".incomplete" in p.name)
    assert all(p.endswith(".lock") for p in left), left  # the lock files only (empty, as after any run)
