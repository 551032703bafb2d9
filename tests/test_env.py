"""The run record's git state: which changes make a checkout dirty."""
from __future__ import annotations

import subprocess

from mmbench.env import checkout_state


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_a_change_anywhere_in_the_tracked_checkout_is_dirty_an_untracked_file_is_not(tmp_path):
    repo = tmp_path / "repo"
    (repo / "mmbench").mkdir(parents=True)
    (repo / "baselines").mkdir()
    (repo / "mmbench" / "core.py").write_text("x = 1\n")
    (repo / "baselines" / "bpr.py").write_text("y = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    src = repo / "mmbench"
    assert checkout_state(src) == {"sha": sha, "dirty": False}
    (repo / "leaderboards").mkdir()
    (repo / "leaderboards" / "seed0.json").write_text("{}")  # a record not committed yet
    assert checkout_state(src) == {"sha": sha, "dirty": False}
    (repo / "baselines" / "bpr.py").write_text("y = 2\n")  # a baseline beside the package, edited
    assert checkout_state(src) == {"sha": sha, "dirty": True}


def test_outside_a_checkout_the_state_is_unknown(tmp_path):
    assert checkout_state(tmp_path) == {"sha": None, "dirty": None}
