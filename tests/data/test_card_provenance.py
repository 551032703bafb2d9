"""A card's [provenance]: each feature or input declares its source, whether it was derived
from user behaviour and from which interactions; inconsistent declarations are refused."""
import pytest

from mmbench.errors import ConfigError

from .formats.common import card

BODY = '''[files]
interactions = "d.inter"
[text]
fields = ["title"]
[split]
method = "preset"
column = "x_label"
[provenance]
{decl}
'''


@pytest.mark.parametrize("decl, message", [
    ('"text/tags" = { source = "tags", behaviour = false, interactions = "all" }',
     r"provenance\.'text/tags': derived from 'all' interactions but behaviour = false"),
    ('"text/tags" = { source = "tags", behaviour = true, interactions = "test" }',
     r"provenance\.'text/tags'\.interactions must be one of none, train, all, got 'test'"),
    ('"image" = { source = "covers", behaviour = false, interactions = "none" }',
     r"provenance\.'image' names neither a feature key .* nor an input of the card"),
    ('"text/tags" = { source = "tags", interactions = "none" }', r"behaviour"),
])
def test_inconsistent_provenance_is_refused(tmp_path, cards_dir, decl, message):
    with pytest.raises(ConfigError, match=message):
        card(cards_dir, "d", "mmrec", tmp_path, BODY.format(decl=decl))


def test_a_consistent_declaration_loads(tmp_path, cards_dir):
    c = card(cards_dir, "d", "mmrec", tmp_path, BODY.format(
        decl='"text" = { source = "titles", behaviour = false, interactions = "none" }\n'
             '"text/clicks" = { source = "co-clicks in train", behaviour = true, interactions = "train" }'))
    assert c.data["provenance"]["text/clicks"]["interactions"] == "train"
