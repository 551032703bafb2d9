"""A suite entry's own feature keys: checked against the suite's list, frozen in the
suite's definition, and absent from the definition of a suite that names none (whose hash
is the one computed before entries could name features)."""
import pytest

from mmbench.errors import ConfigError
from mmbench.suite import definition, load_suite

from .fakes import TWO_TEXTS

PLAIN = '''[suite]
name = "plain"
version = 1

[dataset]
name = "tt"
version = "1"
features = ["text/a", "text/b"]

[run]
seeds = [0, 1]
device = "cpu"

[tuning]
configurations = 2

[[models]]
name = "pop"

[[models]]
name = "itemknn-cbf"
'''


def _load(tmp_path, text):
    (tmp_path / "suite.toml").write_text(text, encoding="utf-8")
    return load_suite(tmp_path)


def test_each_entry_freezes_its_own_features_and_a_plain_suite_is_unchanged(tmp_path):
    d = definition(_load(tmp_path, TWO_TEXTS))
    assert [m.get("features") for m in d["models"]] == [["text/a"], ["text/b"], None]
    plain = _load(tmp_path, PLAIN)
    assert all(set(m) == {"name", "params", "space"} for m in definition(plain)["models"])
    swapped = TWO_TEXTS.replace('features = ["text/a"]', 'features = ["text/b", "text/a"]')
    assert definition(_load(tmp_path, swapped))["models"][0]["features"] == ["text/a", "text/b"]


@pytest.mark.parametrize("given, message", [
    ('features = ["text/c"]', "models 'knn (a)' features: 'text/c' is not one of [dataset] features"),
    ("features = []", "models 'knn (a)' features must list at least one feature key"),
])
def test_an_entry_feature_outside_the_suites_list_is_refused(tmp_path, given, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, TWO_TEXTS.replace('features = ["text/a"]', given))
    text = str(err.value)
    assert message in text and text.startswith(str(tmp_path / "suite.toml")) and "\n" not in text


def test_a_modality_the_suite_drops_must_be_among_an_entrys_features(tmp_path):
    text = TWO_TEXTS.replace('features = ["text/a", "text/b"]', 'features = ["text/a", "text/b", "audio/c"]')
    text = text.replace("[[models]]", '[robustness]\ndrop = ["audio"]\nshares = [0.5]\n\n[[models]]', 1)
    with pytest.raises(ConfigError, match=r"models 'knn \(a\)': cannot drop 'audio'"):
        _load(tmp_path, text)
    text = text.replace('features = ["text/a"]', 'features = ["text/a", "audio/c"]').replace(
        'features = ["text/b"]', 'features = ["text/b", "audio/c"]')
    assert [m.features for m in _load(tmp_path, text).models] == [["audio/c", "text/a"], ["audio/c", "text/b"],
                                                                  None]
