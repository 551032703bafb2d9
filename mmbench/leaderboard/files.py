"""The files of ``leaderboards/<suite>/v<N>/``: rendered, written, checked against a
rebuild, and frozen to the identity (dataset, features, protocol) they were built under."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_write_text
from .build import Leaderboard
from .html import to_html
from .select import identity
from .text import to_csv, to_json, to_markdown

FILES = ("README.md", "leaderboard.csv", "leaderboard.json", "index.html")


def render(lb: Leaderboard, suite) -> dict[str, str]:
    """Every file of ``v<N>/`` as text (what :func:`write` writes and ``check`` compares)."""
    return {"README.md": to_markdown(lb, suite), "leaderboard.csv": to_csv(lb), "leaderboard.json": to_json(lb),
            "index.html": to_html(lb, suite)}


def version_dir(suite, out_dir: Path | None = None) -> Path:
    return Path(out_dir) if out_dir else suite.folder / f"v{suite.version}"


def check_frozen(suite, out: Path) -> None:
    """A version is frozen to its protocol: rebuilding v<N> under another protocol, dataset or
    feature set is refused (old versions stay as they were)."""
    import json

    p = out / "leaderboard.json"
    if not p.is_file():
        return
    try:
        old = json.loads(p.read_text(encoding="utf-8")).get("identity")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    if old is None:
        return
    new = identity(suite)
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ConfigError(f"v{suite.version} was built under a different {', '.join(diff)}; old versions stay "
                          "frozen", where=str(suite.path),
                          hint=f"set [suite] version = {suite.version + 1} to start a new leaderboard version")


def write(lb: Leaderboard, suite, out_dir: Path | None = None) -> Path:
    out = version_dir(suite, out_dir)
    check_frozen(suite, out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render(lb, suite).items():
        atomic_write_text(out / name, text)
    return out


def check(lb: Leaderboard, suite, out_dir: Path | None = None) -> list[str]:
    """Differences between a fresh build and the files in ``v<N>/`` (empty: identical bytes)."""
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
    return problems
