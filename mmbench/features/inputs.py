"""What an encoder is given per item: text rendered from the card, media files from the card.

* Text: the card's ``[text]`` table over the prepared ``item_attributes.tsv`` --
  ``replace = [[old, new], ...]`` applied to each field, then ``template`` (``str.format``
  with the field names), or, without a template, the non-empty fields joined by ``". "``.
  An item whose fields are all empty has no text (``None``: its feature row is missing).
  A text variant (``[text.variants."<key>"]``) renders the same way from its own file: a
  tab-separated table whose ``key`` column is matched to the item attribute ``join``.
* Media: the card's ``[media]`` table maps a modality to a per-item template. A rendered
  ``http(s)``/``file`` URL is downloaded (resumable, via :mod:`mmbench.data.download`) into
  ``$MMBENCH_HOME/media/<card>/<version>/<modality>/<item raw id><ext>``; with a mirror the
  file is looked up as ``<mirror>/<item raw id><ext>``. Anything else is a path relative to
  the source folder. Items whose media cannot be fetched get ``None`` (reported, not fatal).
"""
from __future__ import annotations

import re
import string
import urllib.parse
from pathlib import Path

from ..errors import ConfigError, DataError, MMBenchError
from ..names import inside
from ..paths import data_home

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _attributes(ds) -> tuple[list[str], list[list[str]]]:
    attrs = ds.item_attributes()
    if attrs is None:
        raise DataError("the dataset has no item attributes (item_attributes.tsv)", where=str(ds.path),
                        hint="the card needs files.items to render text or media per item")
    header, rows = attrs
    if len(rows) != ds.n_items:
        raise DataError(f"item_attributes.tsv has {len(rows)} rows for {ds.n_items} items", where=str(ds.path))
    return header, rows


def _fields_of(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def render(template: str, header: list[str], rows: list[list[str]], where: str) -> list[dict]:
    """Per row, the dict of its fields (checks the template names existing fields)."""
    for f in _fields_of(template):
        if f not in header:
            raise ConfigError(f"template field {{{f}}} is not an item attribute (have: {', '.join(header[1:])})",
                              where=where)
    return [dict(zip(header, r)) for r in rows]


def joined_attributes(ds, spec: dict, folder: Path, where: str) -> tuple[list[str], list[list[str]]]:
    """The columns of a text variant's file and, per item, the row whose ``key`` column equals the
    item's ``join`` attribute (empty fields where there is none)."""
    from ..data.formats.delimited import keyed_rows, tsv_table

    header, rows = _attributes(ds)
    if spec["join"] not in header:
        raise ConfigError(f"join {spec['join']!r} is not an item attribute (have: {', '.join(header[1:])})",
                          where=where)
    path = inside(folder, spec["file"], "text variant file", where)
    names, lines = tsv_table(path)
    if spec["key"] not in names:
        raise DataError(f"has no column {spec['key']!r} (the variant's key; columns: {', '.join(names)})",
                        where=f"{path}:1")
    table = keyed_rows(path, lines, names.index(spec["key"]), spec["key"])
    j, empty = header.index(spec["join"]), [""] * len(names)
    return names, [table.get(r[j], empty) for r in rows]


def item_texts(ds, card, variant: str | None = None, folder: Path | None = None) -> list[str | None]:
    """One text per item (in item index order), or None where the item has no text: from the
    card's ``[text]``, or from its text variant ``variant`` (a feature key) read in ``folder``."""
    text = card.data.get("text")
    if not text:
        raise ConfigError("the card has no [text] table (which item fields make the text)", where=str(card.path),
                          hint="add [text] fields = [...] and optionally template = '...'")
    if variant is None:
        spec, where = text, f"{card.path} [text]"
        header, rows = _attributes(ds)
    else:
        spec, where = text["variants"][variant], f"{card.path} [text.variants.{variant!r}]"
        header, rows = joined_attributes(ds, spec, Path(folder), where)
    fields = list(spec["fields"])
    missing = [f for f in fields if f not in header]
    if missing:
        raise ConfigError(f"text field {missing[0]!r} is not an item attribute (have: {', '.join(header[1:])})",
                          where=where)
    template = spec.get("template")
    if template:
        render(template, header, rows[:1], where)
    replace = [tuple(pair) for pair in spec.get("replace", [])]
    if any(len(p) != 2 for p in replace):
        raise ConfigError("text.replace must be a list of [old, new] pairs", where=where)
    out: list[str | None] = []
    for r in rows:
        vals = dict(zip(header, r))
        for f in fields:
            v = vals[f]
            for old, new in replace:
                v = v.replace(old, new)
            vals[f] = v.strip()
        if not any(vals[f] for f in fields):
            out.append(None)
        elif template:
            out.append(template.format_map(vals))
        else:
            out.append(". ".join(vals[f] for f in fields if vals[f]))
    return out


def media_dir(card, modality: str) -> Path:
    return data_home() / "media" / card.name / card.version / modality


def _ext(url: str) -> str:
    suffix = Path(urllib.parse.urlparse(url).path).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


def _local_media(base: Path, target: str) -> tuple[str | None, str | None]:
    """A media path from the card's template: the regular file it names inside ``base``, or why not."""
    try:
        p = inside(base, target, "media path")
    except ConfigError as e:
        return None, str(e)
    return (str(p), None) if p.is_file() else (None, f"{p}: not a regular file (or not found)")


def item_media(ds, card, modality: str, *, folder: Path | None = None, mirror=None, progress: bool = True,
               retries: int = 1, timeout: float = 20.0) -> tuple[list[str | None], dict[int, str]]:
    """Local media file per item (None where unavailable) and ``index -> reason`` for the failures."""
    from ..data.download import Source, fetch

    media = card.data.get("media", {})
    where = f"{card.path} [media]"
    if modality not in media:
        have = ", ".join(sorted(media)) or "none"
        raise ConfigError(f"the card gives no {modality} media per item (media: {have})", where=str(card.path),
                          hint=f"add [media] {modality} = '<URL or path template>' to the card")
    template = str(media[modality])
    header, rows = _attributes(ds)
    records = render(template, header, rows, where)
    raw_ids = ds.item_raw_ids()
    dest = media_dir(card, modality)
    out: list[str | None] = []
    failed: dict[int, str] = {}
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(rows), desc=f"{modality} media", unit="item")
        except ImportError:
            bar = None
    try:
        for i, rec in enumerate(records):
            target = template.format_map(rec).strip()
            if not target or any(not rec[f] for f in _fields_of(template)):
                out.append(None)
            elif urllib.parse.urlparse(target).scheme.lower() in ("http", "https", "file"):
                name = _SAFE.sub("_", raw_ids[i]) + _ext(target)
                try:
                    p = fetch(Source(url=target, filename=name), dest, mirror=mirror, retries=retries,
                              backoff=0.5, timeout=timeout, progress=False)
                    out.append(str(p))
                except MMBenchError as e:
                    out.append(None)
                    failed[i] = str(e)
            else:
                p, why = _local_media(folder if folder is not None else ds.path, target)
                out.append(p)
                if why:
                    failed[i] = why
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out, failed
