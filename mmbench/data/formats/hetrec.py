"""HetRec 2011 Last.fm files (format ``hetrec-lastfm``).

``user_artists.dat`` (``userID artistID weight``). The listening count ``weight`` is kept as the
rating; every row is an implicit positive unless the card sets ``filters.min_rating`` (a
play-count threshold). Items: ``artists.dat`` plus a ``tags`` field -- the artist's distinct
tags (``user_taggedartists.dat`` joined with ``tags.dat``), sorted and comma-separated; empty
when the tag-assignment file is absent.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from .base import Format, Interactions, SideTable, side_file
from .delimited import LATIN, keyed_rows, keyed_side, read_delimited, tsv_table

_COLS = {"user": "userID", "item": "artistID", "rating": "weight"}


def _artist_tags(card, folder: Path) -> dict[str, set[str]]:
    """Artist id -> its distinct tag names (empty without the tag files)."""
    tag_file, tagged_file = side_file(card, folder, "tags"), side_file(card, folder, "tagged")
    if tag_file is None or tagged_file is None:
        return {}
    tag_name = {r[0]: r[1].strip() for _, r in tsv_table(tag_file)[1]}
    names, rows = tsv_table(tagged_file)
    for want in ("artistID", "tagID"):
        if want not in names:
            raise DataError(f"column {want!r} missing from the header (have {names})", where=f"{tagged_file}:1")
    a, t = names.index("artistID"), names.index("tagID")
    tags: dict[str, set[str]] = {}
    for ln, r in rows:
        if r[t] not in tag_name:
            raise DataError(f"field 'tagID': tag {r[t]!r} is not in {card.files['tags']}", where=f"{tagged_file}:{ln}")
        tags.setdefault(r[a], set()).add(tag_name[r[t]])
    return tags


class HetRecLastfm(Format):
    """Last.fm 2K as GroupLens released it for HetRec 2011."""

    def read_interactions(self, card, folder: Path) -> Interactions:
        cols = {**_COLS, **card.data.get("columns", {})}
        return read_delimited(folder / card.files["interactions"], cols, encodings=LATIN)

    def read_side(self, card, folder: Path, role: str) -> SideTable | None:
        path = side_file(card, folder, role)
        if path is None or role != "items":
            return keyed_side(card, folder, role)
        names, rows = tsv_table(path)
        tags = _artist_tags(card, folder)
        out = keyed_rows(path, rows, 0, names[0])
        return SideTable([*names, "tags"], {k: [*r, ", ".join(sorted(tags.get(k, ())))] for k, r in out.items()})
