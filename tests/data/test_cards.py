"""A card's published results ([publications] and [[published]]): read with their publication,
and every mistake one line naming the file and the field."""
import pytest

from mmbench.data.cards import find_card, load_card
from mmbench.errors import ConfigError
from mmbench.leaderboard.references import check_metrics

from ..helpers import write_card

PUBLICATION = '''
[publications.zhou2023]
citation = "X. Zhou, Z. Shen. 2023. A Tale of Two Graphs. ACM MM"
url = "https://arxiv.org/abs/2211.06924"
split = "8:1:1 per user"
masking = "train items"
'''


def card_with(tmp_path, extra):
    return write_card(tmp_path, "toy", tmp_path, extra=extra)


def entry(**fields):
    base = {"source": '"zhou2023"', "table": '"Table 2"', "model": '"bpr"', "metric": '"recall@20"', "value": "0.0357"}
    base.update(fields)
    return "\n[[published]]\n" + "\n".join(f"{k} = {v}" for k, v in base.items() if v is not None) + "\n"


def test_published_results_come_with_their_publication(tmp_path):
    card = load_card(card_with(tmp_path, PUBLICATION + entry() + entry(model='"freedom"', value="0.0992",
                                                                        low="0.0980", high="0.1001")))
    first, second = card.published
    assert (first["model"], first["metric"], first["value"]) == ("bpr", "recall@20", 0.0357)
    assert first["publication"]["url"] == "https://arxiv.org/abs/2211.06924"
    assert first["publication"]["split"] == "8:1:1 per user"
    assert (second["low"], second["high"]) == (0.0980, 0.1001)


def test_a_card_without_published_results_has_none(tmp_path):
    assert load_card(card_with(tmp_path, "")).published == []


@pytest.mark.parametrize("extra,message", [
    (PUBLICATION + entry(source='"zhou"'), "published[0].source 'zhou' is not a key of [publications]"),
    (PUBLICATION + entry(model='"freedon"'), "published[0].model 'freedon' is not a registered model"),
    (PUBLICATION + entry(metric='"Recall@20"'), "published[0].metric 'Recall@20' must be our canonical name"),
    (PUBLICATION + entry(value='"0.03"'), "'published[0].value' must be float"),
    (PUBLICATION + entry(table=None), "missing required key 'published[0].table'"),
    (PUBLICATION + entry(low="0.03"), "published[0]: low and high go together"),
    (PUBLICATION + entry(low="0.036", high="0.04"), "published[0]: low and high go together, around value"),
    (PUBLICATION + entry() + entry(), "published[1]: bpr recall@20 of zhou2023 Table 2 is given twice"),
    (PUBLICATION.replace('split = "8:1:1 per user"\n', ""), "missing required key 'publications.zhou2023.split'"),
    (PUBLICATION.replace("masking", "masks"), "unknown key 'publications.zhou2023.masks'"),
])
def test_a_wrong_published_result_is_one_line_naming_the_file_and_field(tmp_path, extra, message):
    path = card_with(tmp_path, extra)
    with pytest.raises(ConfigError) as e:
        load_card(path)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and message in text


@pytest.mark.parametrize("metric,message", [("recal@20", "published[0].metric: unknown metric 'recal'"),
                                            ("ndcg@020", "published[0].metric 'ndcg@020' must be written 'ndcg@20'")])
def test_a_metric_we_do_not_know_is_refused_where_a_board_compares_it(tmp_path, metric, message):
    card = load_card(card_with(tmp_path, PUBLICATION + entry(metric=f'"{metric}"')))  # metrics: a higher layer
    with pytest.raises(ConfigError) as e:
        check_metrics(card)
    assert str(e.value).startswith(f"{card.path}: ") and message in str(e.value)


def test_the_amazon_cards_published_results_are_valid():
    """The built-in cards load (a broken one raises) and name only our models and metrics."""
    for name in ("amazon-baby", "amazon-sports", "amazon-clothing"):
        check_metrics(find_card(name))
        for p in find_card(name).published:
            assert p["metric"] in {"recall@10", "recall@20", "ndcg@10", "ndcg@20"} and 0 < p["value"] < 1
            assert p["publication"]["url"].startswith("https://")
