"""``mmbench plugin new NAME``: a pip-installable model package, ready to fill in.

The package registers its model through the ``mmbench.models`` entry point, exactly like
the built-in baselines, so ``mmbench run -m NAME``, suites and leaderboards use it once it
is installed. The skeleton is a small working model (BPR-trained ID embeddings, plus a
projection of item content when the dataset has features) so that ``mmbench check NAME``
passes before any change; its test runs that check.
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
mmbench run -m {name} -d ml-100k --seed 0
pytest tests                     # runs `mmbench check {name}`
```

Edit `{package}/model.py`: keep `__init__` to explicit keyword hyper-parameters with
defaults (they are recorded and hashed), `fit(...)` returns `self`, `score(users)` returns
a fresh `(len(users), n_items)` tensor. Declare the modalities the model needs in
`requires` (e.g. `("text",)`), those it can use in `uses`, and in `requires_any` a group of
which it needs at least one.

See docs/submitting.md in mmbench for what a leaderboard submission contains.
'''

MODEL = '''"""{cls}: TODO describe the method (paper, what it learns, which modalities it uses)."""
from __future__ import annotations

import torch
from torch import nn

from mmbench.nn import TorchRecommender, bpr_loss, l2


class _Net(nn.Module):
    def __init__(self, n_users, n_items, dim, features):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.user.weight)
        nn.init.xavier_normal_(self.item.weight)
        self.content = None
        if features:  # one projection per feature key; missing rows get a learned embedding
            from mmbench.mm import ModalityProjector

            self.content = ModalityProjector(features, dim)

    def items(self, idx=None):
        e = self.item.weight if idx is None else self.item(idx)
        if self.content is not None:
            c, _ = self.content(idx)
            e = e + c.mean(0)
        return e


class {cls}(TorchRecommender):
    """TODO: one paragraph on the method and its reference.

    The skeleton learns user and item embeddings with BPR; when the dataset has item
    content (text, image or audio features) each item also gets a projection of it.
    """

    task = "ranking"
    requires = ()  # modalities that must be present, e.g. ("text",)
    uses = ("text", "image", "audio")  # modalities used when present
    paper = ""

    def __init__(self, embedding_dim: int = 32, lr: float = 1e-3, reg: float = 1e-4, batch_size: int = 2048,
                 epochs: int = 50, patience: int = 5, eval_every: int = 1):
        self.embedding_dim = embedding_dim
        self.lr = lr
        self.reg = reg
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.eval_every = eval_every

    def build(self, data, features):
        return _Net(data.n_users, data.n_items, self.embedding_dim, features)

    def loss(self, batch):
        u, i, j = batch
        m = self.module_
        eu, ei, ej = m.user(u), m.items(i), m.items(j)
        return bpr_loss((eu * ei).sum(1), (eu * ej).sum(1)) + self.reg * l2(eu, ei, ej)

    def score_module(self, users):
        m = self.module_
        return m.user(users) @ m.items().T
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
