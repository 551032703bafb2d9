"""``mmbench plugin new NAME``: a pip-installable model package, ready to fill in.

The package registers its model through the ``mmbench.models`` entry point, exactly like
the built-in baselines, so ``mmbench run -m NAME``, suites and leaderboards use it once it
is installed. The skeleton is a small working multimodal model on :mod:`mmbench.models`
(BPR-trained ID embeddings plus a projection of each item's content features) so that
``mmbench check NAME`` passes before any change; its test runs that check.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{name}: a model for mmbench"
readme = "README.md"
requires-python = ">=3.10"
license = {{ text = "Apache-2.0" }}
dependencies = ["mmbench>=0.1", "torch"]

[project.optional-dependencies]
test = ["pytest"]

# mmbench finds the model through this entry point: `mmbench run -m {name} ...`
[project.entry-points."mmbench.models"]
{name} = "{package}.model:{cls}"

[tool.setuptools]
packages = ["{package}"]
'''

README = '''# {dist}

`{name}`: a model for [mmbench](https://github.com/) packaged as a plugin.

```bash
pip install -e .                 # registers the entry point `{name}`
mmbench models list              # {name} appears with this distribution and version
mmbench check {name}             # the conformance checks every submission passes
mmbench features build-defaults -d ml-100k   # the skeleton reads item content (MiniLM text)
mmbench run -m {name} -d ml-100k --seed 0
pytest tests                     # runs `mmbench check {name}`
```

Edit `{package}/model.py`: declare each hyper-parameter once as a class attribute
(`name = Param(default, ge=..., choices=..., help="...")`; they are validated, recorded and
hashed), `fit(...)` returns `self`, `score(users)` returns a fresh `(len(users), n_items)`
tensor. Declare the modalities the model needs in `requires` (e.g. `("text",)`), those it
can use in `uses`, and in `requires_any` a group of which it needs at least one (the
skeleton, a `ContentRecommender`, needs at least one of text/image/audio/video: run
`mmbench features build-defaults -d ml-100k` before `mmbench run`).

See docs/submitting.md in mmbench for what a leaderboard submission contains.
'''

MODEL = '''"""{cls}: TODO describe the method (paper, what it learns, which modalities it uses)."""
from __future__ import annotations

from torch import nn

from mmbench.models import ContentRecommender, ModalityProjector, Param, UserDotItem, init_embedding


class _Net(UserDotItem, nn.Module):
    """Two towers whose dot product is the score: a user embedding, and an item vector =
    the item's ID embedding + the mean of its projected content features (one projection
    per feature key; a row the feature store marks missing gets a learned embedding)."""

    def __init__(self, features, n_users, n_items, dim):
        super().__init__()
        self.user = init_embedding(n_users, dim)
        self.id = init_embedding(n_items, dim)
        self.content = ModalityProjector(features, dim)

    def items(self, i=None):  # i=None: every item
        emb, _present = self.content(i)  # (n_keys, n, dim), (n_keys, n)
        return self.with_id(emb.mean(0), i), None  # item vectors, no item bias


class {cls}(ContentRecommender, epochs=50, patience=5, reg=1e-4):
    """TODO: one paragraph on the method and its reference.

    The skeleton is a content-aware MF trained with BPR: items are their ID embedding plus a
    projection of their content (any non-empty subset of text, image, audio, video
    features). ContentRecommender brings the training loop (Adam, early stopping on
    validation), the BPR loss with L2 (``reg``) on ``penalized`` embeddings, the check that
    the dataset has content, and single-matmul scoring with a cached item table.
    """

    paper = ""
    embedding_dim = Param(32, ge=1, help="size of the user and item vectors")

    def build_module(self, data, features):
        return _Net(features, data.n_users, data.n_items, self.embedding_dim)
'''

INIT = '''"""{dist}: the `{name}` model for mmbench."""
'''

TEST = '''"""The conformance checks of mmbench on this plugin (what CI runs on a submission)."""
import subprocess
import sys


def test_mmbench_check():
    out = subprocess.run([sys.executable, "-m", "mmbench", "check", "{name}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
'''


def names(name: str) -> dict[str, str]:
    """Distribution, import package and class names derived from the model name."""
    if not _NAME.match(name):
        raise ConfigError(f"plugin name {name!r} must be lower-case letters and digits, words joined by - or _",
                          hint="e.g. mmbench plugin new my-model")
    words = re.split(r"[-_]", name)
    return {"name": name, "dist": "mmbench-" + name.replace("_", "-"),
            "package": "mmbench_" + "_".join(words), "cls": "".join(w.capitalize() for w in words)}


def scaffold(name: str, dest: str | Path = ".") -> tuple[Path, list[Path]]:
    """Write the package ``<dest>/mmbench-<name>/``; an existing folder is never overwritten."""
    from .io import atomic_write_text

    n = names(name)
    root = Path(dest) / n["dist"]
    if root.exists():
        raise ConfigError("folder already exists", where=str(root), hint="choose another name or --dir")
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"{n['package']}/__init__.py": INIT,
        f"{n['package']}/model.py": MODEL, f"tests/test_{n['package']}.py": TEST,
    }
    written = []
    for rel, template in files.items():
        path = root / rel
        atomic_write_text(path, template.format(**n))
        written.append(path)
    return root, written
