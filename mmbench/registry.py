"""Entry-point registries: models, encoders and dataset-card providers.

Built-in baselines register exactly like third-party plugins, through
``[project.entry-points."mmbench.models"]``. Listing reads entry-point metadata only;
a plugin's code is imported when it is first used. Two distributions registering the
same name is an error naming both; a plugin that fails to import is reported as broken
without breaking the listing of the others.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .errors import RegistryError

GROUPS = {
    "models": "mmbench.models",
    "encoders": "mmbench.encoders",
    "datasets": "mmbench.datasets",
    "formats": "mmbench.formats",
    "metrics": "mmbench.metrics",
}


@dataclass(frozen=True)
class Entry:
    name: str
    value: str  # "module:attr"
    group: str
    distribution: str
    version: str

    def load(self) -> Any:
        try:
            ep = metadata.EntryPoint(self.name, self.value, self.group)
            return ep.load()
        except Exception as e:  # a plugin may raise anything at import
            raise RegistryError(
                f"plugin {self.name!r} from distribution {self.distribution} {self.version} is broken: "
                f"{type(e).__name__}: {e}",
                hint=f"fix or uninstall {self.distribution}",
            ) from e


def _entries(group: str) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for dist in metadata.distributions():
        eps = [ep for ep in dist.entry_points if ep.group == group]
        if not eps:  # most distributions: their METADATA (slow to parse) is not read
            continue
        dname, version = dist.metadata["Name"] or "?", dist.version or "?"
        for ep in eps:
            e = Entry(ep.name, ep.value, group, dname, version)
            prev = found.get(ep.name)
            if prev is None:
                found[ep.name] = e
            elif (prev.distribution, prev.value) != (e.distribution, e.value):
                raise RegistryError(
                    f"name {ep.name!r} in {group} is registered twice: by {prev.distribution} "
                    f"({prev.value}) and by {e.distribution} ({e.value})",
                    hint="uninstall one of them or rename the entry point",
                )
            # the same distribution seen twice on sys.path (editable + build dir) is harmless
    return dict(sorted(found.items()))


def module_findable(module: str) -> bool:
    """Whether ``module`` can be found, without importing it or its parent packages."""
    import importlib.util
    from pathlib import Path

    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    locations = list(spec.submodule_search_locations or [])
    for part in rest:
        found = None
        for loc in locations:
            p = Path(loc) / part
            if (p / "__init__.py").is_file() or p.is_dir():
                found = [str(p)]
                break
            if p.with_suffix(".py").is_file():
                found = []
                break
        if found is None:
            return False
        locations = found
    return True


def entries(kind: str) -> dict[str, Entry]:
    return _entries(GROUPS[kind])


def get_entry(kind: str, name: str) -> Entry:
    all_entries = entries(kind)
    if name in all_entries:
        return all_entries[name]
    close = difflib.get_close_matches(name, list(all_entries), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else (
        f"`mmbench {kind} list` shows what is installed")
    singular = kind[:-1]
    raise RegistryError(f"unknown {singular} {name!r}", hint=hint)


def load(kind: str, name: str) -> Any:
    return get_entry(kind, name).load()


def load_model_class(spec: str):
    """A registered model name, or an explicit ``path/to/file.py:Class`` given by the user."""
    if spec.endswith(".py") or ".py:" in spec:
        return _load_from_file(spec)
    return load("models", spec)


def _load_from_file(spec: str):
    import importlib.util
    from pathlib import Path

    path, _, attr = spec.partition(":")
    p = Path(path)
    if not p.is_file():
        raise RegistryError("model file not found", where=path)
    if not attr:
        raise RegistryError("no class given", where=spec, hint="use path/to/file.py:ClassName")
    mod_name = f"mmbench_userfile_{abs(hash(str(p.resolve())))}"
    sp = importlib.util.spec_from_file_location(mod_name, p)
    module = importlib.util.module_from_spec(sp)
    try:
        sp.loader.exec_module(module)
    except Exception as e:
        raise RegistryError(f"importing failed: {type(e).__name__}: {e}", where=path) from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RegistryError(f"no class {attr!r} in the file", where=path) from None
