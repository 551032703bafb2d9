"""Dataset cards: one TOML file per dataset version, validated strictly.

Cards are found, in order, in: directories named in ``$MMBENCH_CARDS`` (os.pathsep
separated), the data home's ``cards/`` (written by ``mmbench import``), and every
directory provided through the ``mmbench.datasets`` entry-point group (the built-in
``datasets/`` folder is one of them, registered exactly like a plugin's).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RegistryError
from ..io import sha256_file
from ..names import check_feature_key, check_name
from ..schema import ArrayOf, ListOf, Table, load_toml, validate

FEATURE_ROWS = ("item-id", "items-file", "id-mapping")
WARM_METHODS = ("random_ratio", "temporal_ratio", "temporal_loo", "random_loo")  # per-user methods
SPLIT_METHODS = (*WARM_METHODS, "preset", "cold_items")
COLD_KEYS = ("cold_share", "cold_valid_share", "warm")  # method = "cold_items" (mmbench.data.splits)

FILTERS_SPEC = {
    "min_rating": (float, False),
    "user_core": (int, False),
    "item_core": (int, False),
    "duplicates": (str, False),  # "error" | "keep_first" | "keep_last"
}
SPLIT_SPEC = {
    "method": (str, True),
    "ratios": (ListOf(float), False),
    "seed": (int, False),
    "column": (str, False),  # for method = "preset"
    "cold_share": (float, False),  # cold_items: share of the items that get no training interaction
    "cold_valid_share": (float, False),  # cold_items: share of the cold items whose interactions go to valid
    "warm": (str, False),  # cold_items: how the warm items' interactions split (a per-user method)
}
DOWNLOAD_SPEC = {  # one file of a multi-file source ([[sources.downloads]])
    "url": (str, True),
    "file": (str, False),  # saved (and mirror) file name; default: the URL's last path segment
    "sha256": (str, False),
    "size": (int, False),
    "archive": (bool, False),
    "strip": (str, False),
}
SOURCE_SPEC = {
    "name": (str, True),
    "url": (str, False),
    "package": (str, False),
    "path": (str, False),
    "files": (ListOf(str), False),
    "sha256": (str, False),
    "size": (int, False),
    "archive": (bool, False),
    "strip": (str, False),  # folder inside the archive that holds the files
    "note": (str, False),
    "format": (str, False),
    "checksums": Table({}, open=True),  # file name -> sha256 of extracted/bundled files
    "downloads": ArrayOf(DOWNLOAD_SPEC),  # several files, each with its own URL (instead of `url`)
    "manual": (bool, False),  # the origin needs a browser (e.g. a Drive folder): only a mirror is fetched
    "roles": Table({}, open=True),  # role -> file name for this source, overriding [files]
}
CARD_SPEC = {
    "dataset": Table({
        "name": (str, True),
        "version": (str, True),
        "title": (str, True),
        "description": (str, False),
        "homepage": (str, False),
        "license": (str, True),
        "citation": (str, False),
        "format": (str, True),
        "modalities": (ListOf(str), True),
        "tags": (ListOf(str), False),
        # how rows of [features] files align to items: "item-id" (row i = integer item id i, the
        # default), "items-file" (row i = i-th row of files.items), "id-mapping" (MMRec's
        # i_id_mapping file maps raw ids to the row)
        "feature_rows": (str, False),
    }, required=True),
    "sources": ArrayOf(SOURCE_SPEC, required=True),
    "files": Table({}, required=True, open=True),  # role -> file name, e.g. interactions = "x.inter"
    "columns": Table({
        "user": (str, False), "item": (str, False), "rating": (str, False),
        "timestamp": (str, False), "label": (str, False),
    }),
    "features": Table({}, open=True),  # feature key -> file name (row-aligned .npy)
    "text": Table({"fields": (ListOf(str), True), "template": (str, False),
                   "replace": (ListOf(ListOf(str)), False)}),  # [[old, new], ...] applied to each field
    "media": Table({}, open=True),  # modality -> per-item URL or path template, e.g. image = "{pictureURL}"
    "derived": Table({}, open=True),  # feature key -> recipe table (mmbench.features.derived), e.g. genre multi-hot
    "filters": Table(FILTERS_SPEC),
    "split": Table(SPLIT_SPEC, required=True),
    "stats": Table({}, open=True),  # published statistics, checked after preparation
}


@dataclass
class Card:
    path: Path
    data: dict
    sha256: str = ""

    @property
    def name(self) -> str:
        return self.data["dataset"]["name"]

    @property
    def version(self) -> str:
        return self.data["dataset"]["version"]

    @property
    def meta(self) -> dict:
        return self.data["dataset"]

    @property
    def filters(self) -> dict:
        return dict(self.data.get("filters", {}))

    @property
    def split(self) -> dict:
        return dict(self.data["split"])

    @property
    def files(self) -> dict:
        return dict(self.data["files"])

    @property
    def columns(self) -> dict:
        cols = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
        cols.update(self.data.get("columns", {}))
        return cols

    @property
    def sources(self) -> list[dict]:
        return list(self.data["sources"])

    @property
    def format(self) -> str:
        return self.meta["format"]

    def for_source(self, src: dict) -> "Card":
        """The card as seen through one source: its ``format`` and ``roles`` override the card's."""
        if not (src.get("format") or src.get("roles")):
            return self
        data = dict(self.data)
        data["dataset"] = {**self.meta, "format": src.get("format") or self.format}
        data["files"] = {**self.files, **src.get("roles", {})}
        return Card(path=self.path, data=data, sha256=self.sha256)


def validate_filters(filters: dict, where: str) -> dict:
    validate(filters, FILTERS_SPEC, where=where, path="filters")
    dup = filters.get("duplicates", "error")
    if dup not in ("error", "keep_first", "keep_last"):
        raise ConfigError(f"filters.duplicates must be error, keep_first or keep_last, got {dup!r}", where=where)
    for k in ("user_core", "item_core"):
        if filters.get(k, 0) < 0:
            raise ConfigError(f"filters.{k} must be >= 0", where=where)
    return filters


def validate_split(split: dict, where: str) -> dict:
    validate(split, SPLIT_SPEC, where=where, path="split")
    method = split["method"]
    if method not in SPLIT_METHODS:
        raise ConfigError(f"split.method {method!r} is unknown", where=where,
                          hint=f"use one of {', '.join(SPLIT_METHODS)}")
    _validate_cold(split, where)
    if split.get("warm", method) in ("random_ratio", "temporal_ratio"):
        ratios = split.get("ratios")
        if not ratios or len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
            raise ConfigError(f"split.ratios must be three non-negative numbers summing to 1, got {ratios}",
                              where=where)
    if not 0 <= split.get("seed", 0) < 2 ** 63:
        raise ConfigError(f"split.seed must be an integer in 0..2**63-1, got {split['seed']}", where=where)
    if method == "preset" and "column" not in split:
        raise ConfigError("split.method = 'preset' needs split.column (the label column)", where=where)
    return split


def _validate_cold(split: dict, where: str) -> None:
    """A ``cold_items`` split names all of :data:`COLD_KEYS` in range; other methods none of them."""
    if split["method"] != "cold_items":
        stray = [k for k in COLD_KEYS if k in split]
        if stray:
            raise ConfigError(f"split.{stray[0]} is only for split.method = 'cold_items'", where=where,
                              hint="remove it, or set method = 'cold_items'")
        return
    missing = [k for k in COLD_KEYS if k not in split]
    if missing:
        raise ConfigError(f"split.method = 'cold_items' needs split.{missing[0]}", where=where,
                          hint="e.g. cold_share = 0.2, cold_valid_share = 0.5, warm = 'random_ratio'")
    if not 0 < split["cold_share"] < 1:
        raise ConfigError(f"split.cold_share must lie in (0, 1), got {split['cold_share']}", where=where)
    if not 0 <= split["cold_valid_share"] < 1:
        raise ConfigError(f"split.cold_valid_share must lie in [0, 1), got {split['cold_valid_share']}", where=where,
                          hint="test needs cold items of its own")
    if split["warm"] not in WARM_METHODS:
        raise ConfigError(f"split.warm {split['warm']!r} is not a per-user split method", where=where,
                          hint=f"use one of {', '.join(WARM_METHODS)}")


def registered_formats() -> list[str]:
    """Names of the dataset formats (entry-point group ``mmbench.formats``: metadata only, nothing imported)."""
    from .. import registry

    return list(registry.entries("formats"))


def _check_formats(data: dict, where: str, formats: list[str]) -> None:
    """Every format the card names (its own and its sources') must be registered."""
    named = [("dataset.format", data["dataset"]["format"])]
    named += [(f"sources[{i}].format", s["format"]) for i, s in enumerate(data["sources"]) if "format" in s]
    for key, fmt in named:
        if fmt not in formats:
            import difflib

            close = difflib.get_close_matches(fmt, formats, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"registered: {', '.join(formats)}"
            raise ConfigError(f"{key} {fmt!r} is not a registered dataset format", where=where, hint=hint)


def _strings(table: dict, name: str, where: str) -> None:
    """Every value of an open table (file names, checksums, templates) is a string."""
    for key, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"{name}.{key} must be a string, got {type(value).__name__}", where=where)


def load_card(path: str | Path, formats: list[str] | None = None) -> Card:
    """Read and validate a card; ``formats``: the registered format names, when the caller has them."""
    path = Path(path)
    data = load_toml(path)
    validate(data, CARD_SPEC, where=str(path))
    validate_filters(data.get("filters", {}), str(path))
    validate_split(data["split"], str(path))
    _check_formats(data, str(path), registered_formats() if formats is None else formats)
    for key in ("name", "version"):  # both become folder names in the data home
        check_name(data["dataset"][key], f"dataset.{key}", str(path))
    for i, src in enumerate(data["sources"]):
        check_name(src["name"], f"sources[{i}].name", str(path))
        _strings(src.get("roles", {}), f"sources[{i}].roles", str(path))
        _strings(src.get("checksums", {}), f"sources[{i}].checksums", str(path))
    for table in ("files", "features", "media"):
        _strings(data.get(table, {}), table, str(path))
    for key in data.get("features", {}):
        check_feature_key(key, str(path))
    files = data["files"]
    if "interactions" not in files and not {"train", "test"} <= set(files):
        raise ConfigError("files.interactions is required (the interaction file name)", where=str(path),
                          hint="or files.train + files.test (+ files.valid) for a split shipped as files")
    rows = data["dataset"].get("feature_rows", "item-id")
    if rows not in FEATURE_ROWS:
        raise ConfigError(f"dataset.feature_rows {rows!r} is unknown", where=str(path),
                          hint=f"use one of {', '.join(FEATURE_ROWS)}")
    for i, src in enumerate(data["sources"]):
        kinds = [k for k in ("url", "downloads", "package", "path") if src.get(k)]
        if not kinds:
            raise ConfigError(f"sources[{i}] needs a url, downloads, a package or a local path", where=str(path))
        if "url" in kinds and "downloads" in kinds:
            raise ConfigError(f"sources[{i}] has both url and downloads", where=str(path),
                              hint="list every file under [[sources.downloads]] instead")
        for j, d in enumerate(src.get("downloads", [])):
            if d.get("archive") and len(src["downloads"]) > 1:
                raise ConfigError(f"sources[{i}].downloads[{j}] is an archive among several downloads",
                                  where=str(path), hint="an archive must be the only file of its source")
    return Card(path=path, data=data, sha256=sha256_file(path))


def card_dirs() -> list[Path]:
    from .. import registry
    from ..paths import local_cards_dir

    dirs = [Path(p) for p in os.environ.get("MMBENCH_CARDS", "").split(os.pathsep) if p]
    dirs.append(local_cards_dir())
    for entry in registry.entries("datasets").values():
        module = entry.value.split(":", 1)[0]
        spec = importlib.util.find_spec(module)  # locates the folder without importing it
        if spec and spec.submodule_search_locations:
            dirs.extend(Path(p) for p in spec.submodule_search_locations)
        elif spec and spec.origin:
            dirs.append(Path(spec.origin).parent)
    return dirs


def _scan() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for d in card_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, []).append(p)
    return found


def list_cards() -> list[Card]:
    """Every card found; broken cards raise (a broken built-in is a bug to see at once)."""
    cards = {}
    formats = registered_formats()
    for stem, paths in _scan().items():
        card = load_card(paths[0], formats)
        cards.setdefault(card.name, card)
    return [cards[k] for k in sorted(cards)]


def find_card(name: str) -> Card:
    """Find a card by dataset name (``ml-100k``) or ``name@version``, or by a TOML path."""
    if name.endswith(".toml"):
        return load_card(name)
    want_version = None
    if "@" in name:
        name, want_version = name.split("@", 1)
    scanned = _scan()
    candidates = []
    for stem, paths in scanned.items():
        if stem == name or stem.startswith(name + "@") or stem.startswith(name + "-v"):
            candidates.extend(paths)
    formats = registered_formats() if candidates else []
    cards = [load_card(p, formats) for p in candidates]
    cards = [c for c in cards if c.name == name and (want_version is None or c.version == want_version)]
    if not cards:
        import difflib

        names = sorted({p.stem.split("@")[0] for p in [x for v in scanned.values() for x in v]})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else "`mmbench datasets list` shows them"
        raise RegistryError(f"unknown dataset {name!r}" + (f" version {want_version}" if want_version else ""),
                            hint=hint)
    return cards[0]


def card_summary(card: Card) -> dict[str, Any]:
    m = card.meta
    return {
        "name": card.name,
        "version": card.version,
        "title": m["title"],
        "license": m["license"],
        "modalities": m["modalities"],
        "source": next((source_label(s) for s in card.sources), ""),
    }


def source_label(src: dict) -> str:
    """Where a source's files come from, in a few words."""
    if src.get("url"):
        return src["url"]
    if src.get("downloads"):
        first = src["downloads"][0]["url"]
        more = len(src["downloads"]) - 1
        return first + (f" (+{more} more)" if more else "")
    if src.get("package"):
        return f"package:{src['package']}/{src.get('path', '')}".rstrip("/")
    return f"local:{src.get('path', '')}"
