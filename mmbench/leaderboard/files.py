"""The files of ``leaderboards/<suite>/v<N>/``: rendered, written, checked against a
rebuild, and frozen to what they were built under: the identity (dataset, features,
protocol) and, under rules 2, the suite's whole definition (:mod:`mmbench.suite.tuning`).

``check`` is what CI runs: the files must be a rebuild's bytes, no record may be rejected
and, under rules 2, every cell must be converged unless the suite is a fixed-budget track.
A board built under older rules is checked under them (the suite says ``rules = 1``); that
is only allowed for the board it already has, never for a new one."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_write_text
from .build import Leaderboard
from .html import to_html
from .select import committed_board, identity
from .text import to_csv, to_json, to_markdown

FILES = ("README.md", "leaderboard.csv", "leaderboard.json", "index.html")


def render(lb: Leaderboard, suite) -> dict[str, str]:
    """Every file of ``v<N>/`` as text (what :func:`write` writes and ``check`` compares)."""
    return {"README.md": to_markdown(lb, suite), "leaderboard.csv": to_csv(lb), "leaderboard.json": to_json(lb),
            "index.html": to_html(lb, suite)}


def version_dir(suite, out_dir: Path | None = None) -> Path:
    return Path(out_dir) if out_dir else suite.folder / f"v{suite.version}"


def check_rules(suite) -> None:
    """Older rules (``[suite] rules``) are accepted only for the suite's committed board that
    was built under them: a new board is always built under the current rules."""
    from ..suite.definition import RULES

    if suite.rules >= RULES:
        return
    board = committed_board(suite)
    if board is None or board.get("rules", 1) != suite.rules:
        raise ConfigError(f"rules = {suite.rules} marks a board built before rules {RULES}, but v{suite.version}/ "
                          f"holds no such board", where=str(suite.path),
                          hint="leave out suite.rules: a new board is built under the current rules")


def check_frozen(suite, out: Path) -> None:
    """A version is frozen to what it was built under: rebuilding v<N> under another protocol,
    dataset or feature set, or (rules 2) another suite definition, is refused (old versions
    stay as they were)."""
    import json

    p = out / "leaderboard.json"
    if not p.is_file():
        return
    try:
        old_board = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    hint = f"set [suite] version = {suite.version + 1} to start a new leaderboard version"
    old, new = old_board.get("identity"), identity(suite)
    if old is not None and old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ConfigError(f"v{suite.version} was built under a different {', '.join(diff)}; old versions stay "
                          "frozen", where=str(suite.path), hint=hint)
    if "definition" in old_board and suite.rules >= 2:
        from ..suite.tuning import definition

        changed = _changes(old_board["definition"], definition(suite))
        if changed:
            raise ConfigError(f"the suite's definition changed since v{suite.version} was built "
                              f"({', '.join(changed)}); old versions stay frozen", where=str(suite.path), hint=hint)


def _changes(old: dict, new: dict) -> list[str]:
    """The parts of a suite definition that differ (per model for the models)."""
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) == new.get(k):
            continue
        if k == "models" and isinstance(old.get(k), list) and len(old[k]) == len(new[k]):
            out += [f"models.{b['name']}" for a, b in zip(old[k], new[k]) if a != b]
        else:
            out.append(k)
    return out


def write(lb: Leaderboard, suite, out_dir: Path | None = None) -> Path:
    out = version_dir(suite, out_dir)
    check_rules(suite)
    check_frozen(suite, out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render(lb, suite).items():
        atomic_write_text(out / name, text)
    return out


def check(lb: Leaderboard, suite, out_dir: Path | None = None) -> list[str]:
    """Why the committed ``v<N>/`` does not hold (empty: it does): files that differ from a
    fresh build, rejected records and, under rules 2, unconverged cells of a converged track."""
    out = version_dir(suite, out_dir)
    problems = []
    for name, text in render(lb, suite).items():
        p = out / name
        if not p.is_file():
            problems.append(f"{name}: missing")
            continue
        old = p.read_bytes()
        new = text.encode("utf-8")
        if old != new:
            a, b = old.decode("utf-8", "replace").split("\n"), text.split("\n")
            line = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.append(f"{name}: differs from a rebuild at line {line + 1}")
    problems += [f"rejected {rel}: {why}" for rel, why in lb.rejected]
    if not lb.fixed_budget:
        problems += [f"not converged: {r.key} seed(s) {r.unconverged} stopped at the epoch budget with the best "
                     "epoch within the last `patience` (raise epochs, or declare [suite] track = \"fixed-budget\")"
                     for r in lb.rows if r.unconverged]
    return problems

