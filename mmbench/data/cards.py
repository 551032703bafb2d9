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
INTERACTIONS = ("none", "train", "all")  # which interactions a feature was derived from (see [provenance])
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
PROVENANCE_SPEC = {  # one feature's (or one input's) origin, in [provenance]
    "source": (str, True),  # in words: what it was made from
    "behaviour": (bool, True),  # derived from user behaviour (tags, reviews, co-listens)?
    "interactions": (str, True),  # INTERACTIONS: which interactions it was derived from
}
TEXT_SPEC = {
    "fields": (ListOf(str), True),
    "template": (str, False),
    "replace": (ListOf(ListOf(str)), False),  # [[old, new], ...] applied to each field
}
TEXT_VARIANT_SPEC = {  # [text.variants."<feature key>"]: another text per item, from its own file
    **TEXT_SPEC,
    "side_source": (str, False),  # the [[side_sources]] entry holding the file (default: the main source)
    "file": (str, True),  # a tab-separated table with a header
    "key": (str, True),  # its column holding the item's id ...
    "join": (str, True),  # ... matched to this item attribute of the prepared dataset
}
PUBLICATION_SPEC = {  # [publications.<key>]: a paper or page whose results [[published]] lists
    "citation": (str, True),
    "url": (str, True),
    "split": (str, True),  # how its train/valid/test split was made (e.g. "MMRec's preset x_label, 8:1:1 per user")
    "masking": (str, False),  # which items it masks at test
    "selection": (str, False),  # how it selects hyper-parameters and stops training
    "note": (str, False),
}
PUBLISHED_SPEC = {  # one published value: [[published]]
    "source": (str, True),  # a key of [publications]
    "table": (str, True),  # where in the source, e.g. "Table 2"
    "model": (str, True),  # our registered model name
    "metric": (str, True),  # our canonical metric name, e.g. "recall@20"
    "value": (float, True),
    "low": (float, False),  # a range the source reports (e.g. over its runs): low and high together
    "high": (float, False),
    "note": (str, False),
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
    "text": Table({**TEXT_SPEC, "variants": Table({}, open=True)}),  # variants: feature key -> TEXT_VARIANT_SPEC
    "media": Table({}, open=True),  # modality -> per-item URL or path template, e.g. image = "{pictureURL}"
    "derived": Table({}, open=True),  # feature key -> recipe table (mmbench.features.derived), e.g. genre multi-hot
    # files some features need beyond the dataset itself (fetched only by them, never by prepare)
    "side_sources": ArrayOf(SOURCE_SPEC),
    # feature key (or input: "text", a [media] modality) -> PROVENANCE_SPEC (mmbench.features.provenance)
    "provenance": Table({}, open=True),
    "filters": Table(FILTERS_SPEC),
    "split": Table(SPLIT_SPEC, required=True),
    "stats": Table({}, open=True),  # published statistics, checked after preparation
    "publications": Table({}, open=True),  # key -> PUBLICATION_SPEC
    "published": ArrayOf(PUBLISHED_SPEC),  # published results on this dataset (mmbench.leaderboard.references)
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
    def side_sources(self) -> list[dict]:
        """Files some features need beyond the dataset (``[[side_sources]]``), never fetched by prepare."""
        return list(self.data.get("side_sources", []))

    @property
    def published(self) -> list[dict]:
        """The published results, each with its publication's fields (citation, url, split, ...)
        under ``publication``."""
        pubs = self.data.get("publications", {})
        return [{**p, "publication": pubs[p["source"]]} for p in self.data.get("published", [])]

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


def validate_published(data: dict, where: str) -> None:
    """[publications] and [[published]]: every source a publication key, every model registered,
    every metric in lower case (that it is a known metric is checked where a board compares it:
    metrics are a higher layer), a range around its value, no value given twice."""
    from .. import registry

    pubs = data.get("publications", {})
    for key, pub in pubs.items():
        check_name(key, "publications key", where)
        validate(pub, PUBLICATION_SPEC, where=where, path=f"publications.{key}")
    models, seen = registry.entries("models"), set()
    for i, p in enumerate(data.get("published", [])):
        at = f"published[{i}]"
        if p["source"] not in pubs:
            raise ConfigError(f"{at}.source {p['source']!r} is not a key of [publications]", where=where,
                              hint=f"add [publications.{p['source']}] (citation, url, split)")
        if p["model"] not in models:
            import difflib

            close = difflib.get_close_matches(p["model"], list(models), n=3, cutoff=0.5)
            raise ConfigError(f"{at}.model {p['model']!r} is not a registered model", where=where,
                              hint=f"did you mean {', '.join(map(repr, close))}?" if close else
                              "`mmbench models list` shows them")
        if p["metric"] != "".join(p["metric"].split()).lower():  # whether it names a metric: on a board
            raise ConfigError(f"{at}.metric {p['metric']!r} must be our canonical name, in lower case "
                              "(e.g. 'recall@20')", where=where)
        if ("low" in p) != ("high" in p) or ("low" in p and not p["low"] <= p["value"] <= p["high"]):
            raise ConfigError(f"{at}: low and high go together, around value (low <= value <= high)", where=where)
        cell = (p["source"], p["table"], p["model"], p["metric"])
        if cell in seen:
            raise ConfigError(f"{at}: {p['model']} {p['metric']} of {p['source']} {p['table']} is given twice",
                              where=where)
        seen.add(cell)


def _strings(table: dict, name: str, where: str) -> None:
    """Every value of an open table (file names, checksums, templates) is a string."""
    for key, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"{name}.{key} must be a string, got {type(value).__name__}", where=where)


def load_card(path: str | Path, formats: list[str] | None = None) -> Card:
    """Read and validate a card; ``formats``: the registered format names, when the caller has them."""
    path = Path(path)
    data = load_toml(path)
    where = str(path)
    validate(data, CARD_SPEC, where=where)
    validate_filters(data.get("filters", {}), where)
    validate_split(data["split"], where)
    _check_formats(data, where, registered_formats() if formats is None else formats)
    validate_published(data, where)
    for key in ("name", "version"):  # both become folder names in the data home
        check_name(data["dataset"][key], f"dataset.{key}", where)
    _check_sources(data, where)
    for table in ("files", "features", "media"):
        _strings(data.get(table, {}), table, where)
    for key in data.get("features", {}):
        check_feature_key(key, where)
    files = data["files"]
    if "interactions" not in files and not {"train", "test"} <= set(files):
        raise ConfigError("files.interactions is required (the interaction file name)", where=where,
                          hint="or files.train + files.test (+ files.valid) for a split shipped as files")
    rows = data["dataset"].get("feature_rows", "item-id")
    if rows not in FEATURE_ROWS:
        raise ConfigError(f"dataset.feature_rows {rows!r} is unknown", where=where,
                          hint=f"use one of {', '.join(FEATURE_ROWS)}")
    _check_text_variants(data, where)
    _check_provenance(data, where)
    return Card(path=path, data=data, sha256=sha256_file(path))


def _check_sources(data: dict, where: str) -> None:
    """Names (unique over sources and side sources), string tables and one kind of origin each."""
    seen: set[str] = set()
    for table in ("sources", "side_sources"):
        for i, src in enumerate(data.get(table, [])):
            at = f"{table}[{i}]"
            check_name(src["name"], f"{at}.name", where)
            if src["name"] in seen:
                raise ConfigError(f"{at}.name {src['name']!r} is used twice", where=where,
                                  hint="sources and side sources need distinct names (each has its own folder)")
            seen.add(src["name"])
            _strings(src.get("roles", {}), f"{at}.roles", where)
            _strings(src.get("checksums", {}), f"{at}.checksums", where)
            kinds = [k for k in ("url", "downloads", "package", "path") if src.get(k)]
            if not kinds:
                raise ConfigError(f"{at} needs a url, downloads, a package or a local path", where=where)
            if "url" in kinds and "downloads" in kinds:
                raise ConfigError(f"{at} has both url and downloads", where=where,
                                  hint="list every file under [[sources.downloads]] instead")
            for j, d in enumerate(src.get("downloads", [])):
                if d.get("archive") and len(src["downloads"]) > 1:
                    raise ConfigError(f"{at}.downloads[{j}] is an archive among several downloads",
                                      where=where, hint="an archive must be the only file of its source")


def _check_text_variants(data: dict, where: str) -> None:
    """Each ``[text.variants."<key>"]``: a text feature key, its table, a side source the card has."""
    sides = [s["name"] for s in data.get("side_sources", [])]
    for key, spec in data.get("text", {}).get("variants", {}).items():
        at = f"text.variants.{key!r}"
        check_feature_key(key, where)
        if not key.startswith("text/"):
            raise ConfigError(f"{at}: a text variant's key must start with 'text/'", where=where)
        validate(spec, TEXT_VARIANT_SPEC, where=where, path=at)
        side = spec.get("side_source")
        if side is not None and side not in sides:
            raise ConfigError(f"{at}.side_source {side!r} is not a [[side_sources]] of the card", where=where,
                              hint=f"side sources: {', '.join(sides) or 'none'}")


def _check_provenance(data: dict, where: str) -> None:
    """Each ``[provenance."<key or input>"]``: a feature key, or an input the card has ("text" for its
    [text] table, a [media] modality), declared with PROVENANCE_SPEC, consistently."""
    inputs = (["text"] if "text" in data else []) + sorted(data.get("media", {}))
    for key, decl in data.get("provenance", {}).items():
        at = f"provenance.{key!r}"
        if "/" in key:
            check_feature_key(key, where)
        elif key not in inputs:
            raise ConfigError(f"{at} names neither a feature key ('<modality>/<name>') nor an input of the card",
                              where=where, hint=f"inputs: {', '.join(inputs) or 'none'}")
        if not isinstance(decl, dict):
            raise ConfigError(f"{at} must be a table {{ source, behaviour, interactions }}", where=where)
        validate(decl, PROVENANCE_SPEC, where=where, path=at)
        if decl["interactions"] not in INTERACTIONS:
            raise ConfigError(f"{at}.interactions must be one of {', '.join(INTERACTIONS)}, got "
                              f"{decl['interactions']!r}", where=where)
        if not decl["behaviour"] and decl["interactions"] != "none":
            raise ConfigError(f"{at}: derived from {decl['interactions']!r} interactions but behaviour = false",
                              where=where, hint="interactions are user behaviour: set behaviour = true, or "
                                                "interactions = \"none\"")


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
