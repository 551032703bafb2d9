"""What a card's provenance says about a feature: it leaks when derived from interactions
beyond train ("all"), or from "train" of the card's default split in a dataset split otherwise;
undeclared is unknown, never clean; `mmbench datasets info` prints it."""
from types import SimpleNamespace

from mmbench.features.provenance import UNKNOWN, card_lines, declared, describe, resplit

from ..conftest import run_cli
from ..data.formats.common import card

TAGS = {"source": "tags", "behaviour": True, "interactions": "all"}
CLICKS = {"source": "co-clicks", "behaviour": True, "interactions": "train"}
NAMES = {"source": "names", "behaviour": False, "interactions": "none"}


def _card(provenance, **data):
    return SimpleNamespace(data={"provenance": provenance, **data}, filters={"user_core": 5},
                           split={"method": "preset", "column": "x_label"})


def test_which_declarations_leak():
    c = _card({"text/tags": TAGS, "text/clicks": CLICKS, "text": NAMES})
    assert declared(c, "text/tags")["leaks"] is True
    assert declared(c, "text/clicks")["leaks"] is False
    moved = declared(c, "text/clicks", resplit=True)
    assert moved["leaks"] is True and "not of this one" in moved["note"]
    assert declared(c, "text/minilm", "text") == {**NAMES, "leaks": False}  # inherits its input's
    assert declared(c, "image/cnn", "image") == UNKNOWN and "not declared" in describe(UNKNOWN)
    assert "LEAKS" in describe(declared(c, "text/tags")) and "LEAKS" not in describe(declared(c, "text"))


def test_resplit_compares_the_prepared_protocol_with_the_card():
    c = _card({})
    same = SimpleNamespace(manifest={"filters": {"user_core": 5}, "split": {"method": "preset", "column": "x_label"}})
    other = SimpleNamespace(manifest={"filters": {"user_core": 5}, "split": {"method": "random_ratio"}})
    assert resplit(same, c) is False and resplit(other, c) is True


def test_card_lines_cover_every_feature_and_input():
    c = _card({"text/tags": TAGS}, features={"text/tags": "t.npy", "audio/a": "a.npy"}, text={"fields": ["x"]},
              media={"image": "{url}"})
    lines = card_lines(c)
    assert [ln.split(":")[0] for ln in lines] == ["audio/a", "text/tags", "text", "image"]
    assert "LEAKS" in lines[1] and "provenance unknown" in lines[0]


def test_datasets_info_prints_the_provenance(tmp_path, cards_dir):
    card(cards_dir, "d", "mmrec", tmp_path, '''[files]
interactions = "d.inter"
[features]
"text/tags" = "tags.npy"
[split]
method = "preset"
column = "x_label"
[provenance]
"text/tags" = { source = "the tags users gave", behaviour = true, interactions = "all" }
''')
    out = run_cli("datasets", "info", "d", env={"MMBENCH_CARDS": str(cards_dir)}).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("provenance: text/tags"))
    assert "the tags users gave (user behaviour; interactions: all) -- LEAKS" in line
