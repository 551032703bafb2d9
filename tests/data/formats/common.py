"""Cards written in a test for one format, and what a prepared dataset holds as raw ids."""
from __future__ import annotations

import numpy as np

from mmbench.data.cards import find_card

CARD_HEAD = '''[dataset]
name = "{name}"
version = "1"
title = "t"
license = "test"
format = "{fmt}"
modalities = ["interactions"]

[[sources]]
name = "local"
path = "{path}"
'''


def card(cards_dir, name, fmt, data_dir, body):
    p = cards_dir / f"{name}.toml"
    p.write_text(CARD_HEAD.format(name=name, fmt=fmt, path=data_dir.as_posix()) + body, encoding="utf-8")
    return find_card(name)


def raw_pairs(ds, split=None):
    users, items = ds.user_raw_ids(), ds.item_raw_ids()
    m = np.ones(len(ds.arrays["user"]), bool) if split is None else ds.mask(split)
    return sorted((users[u], items[i]) for u, i in zip(ds.arrays["user"][m], ds.arrays["item"][m]))
