"""The package's shape: no import cycles, short functions, no machine-specific paths."""
import ast
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, SHARED_DATA, needs_shared

PACKAGE = ROOT / "mmbench"
# docs/architecture.md's layers, bottom up: a module may import its own layer and those below
LAYERS = [
    ("foundation", ["mmbench", "mmbench.errors", "mmbench.io", "mmbench.names", "mmbench.paths", "mmbench.schema",
                    "mmbench.threads", "mmbench.registry", "mmbench.env"]),
    ("data", ["mmbench.data", "mmbench.features"]),
    ("models", ["mmbench.models"]),
    ("evaluation", ["mmbench.evaluate", "mmbench.protocol", "mmbench.stats"]),
    ("runs", ["mmbench.runner", "mmbench.records", "mmbench.check", "mmbench.synthetic", "mmbench.backends"]),
    ("parity", ["mmbench.parity"]),
    ("suites and boards", ["mmbench.suite", "mmbench.leaderboard"]),
    ("interface", ["mmbench.cli", "mmbench.plugin", "mmbench.__main__"]),
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _targets(mod: str, path: Path, node, modules) -> set[str]:
    """The package modules an import statement (anywhere in the file) loads."""
    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        prefix = ".".join(base[:len(base) - node.level + 1] + [node.module or ""]).strip(".") if node.level \
            else node.module or ""
        names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != mod:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for mod, path in modules.items():
        graph[mod] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[mod] |= _targets(mod, path, node, modules)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package_counting_imports_inside_functions():
    graph = import_graph()
    assert "mmbench.runner" in graph and "mmbench.models.training" in graph["mmbench.runner"]  # lazy ones count
    assert cycles(graph) == []


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix that names ``module``."""
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
                if module == p or module.startswith(p + ".")), default=None)
    assert best is not None, f"{module} is in no layer of docs/architecture.md"
    return best[1]


def test_layers_import_only_downwards():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in import_graph().items() for b in targets if layer_of(b) > layer_of(a)]
    assert upward == []


def test_no_function_over_60_lines():
    long = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert long == []


def test_no_machine_specific_paths_in_the_repository():
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    here = str(ROOT.parent) + "/"
    bad = [f for f in files if f.endswith((".py", ".toml", ".md", ".cfg", "Makefile"))
           and (ROOT / f).is_file() and here in (ROOT / f).read_text(errors="replace")]
    assert bad == [], f"files naming {here}: use paths relative to the repository root"


def test_shared_data_is_found_from_the_repo_root_and_skips_say_what_is_missing():
    assert SHARED_DATA == ROOT.parent / "shared" / "data"
    marker = needs_shared("no-such-folder", "x.dat")
    assert marker.kwargs["reason"] == "needs ../shared/data/no-such-folder/x.dat (the shared offline data), absent here"
    assert needs_shared("no-such-folder").args[0] is True
