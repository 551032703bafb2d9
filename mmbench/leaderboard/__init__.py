"""Leaderboards, a pure function of a suite and its run records: which records count
(:mod:`.select`), the table model (:mod:`.build`), its text and HTML renderings (:mod:`.text`,
:mod:`.html`) and the files of ``v<N>/`` (:mod:`.files`); the names callers use are
importable from here."""
from .build import Leaderboard, Row, build
from .files import FILES, check, check_frozen, check_rules, render, version_dir, write
from .html import to_html
from .text import to_csv, to_json, to_markdown

__all__ = ["Leaderboard", "Row", "build", "FILES", "check", "check_frozen", "check_rules", "render", "version_dir",
           "write", "to_html", "to_csv", "to_json", "to_markdown"]
