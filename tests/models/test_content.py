"""Feature selection for models: one check for the runner and the models themselves."""
import numpy as np
import pytest

from mmbench.errors import ConfigError, DataError
from mmbench.features.store import Feature
from mmbench.models import Recommender, select_features


def _f(key, n=4, d=2):
    return Feature(key, np.ones((n, d), np.float32), np.ones(n, bool), "fp-" + key, {})


class TextModel(Recommender):
    requires = ("text",)
    uses = ("audio",)


class AnyContent(Recommender):
    requires_any = ("image", "text")


class Lazy(dict):
    """A mapping that records which keys were read (a FeatureStore view loads on lookup)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.read = []

    def __getitem__(self, k):
        self.read.append(k)
        return super().__getitem__(k)


def test_only_declared_modalities_are_read_and_handed_over():
    feats = Lazy({k: _f(k) for k in ("text/a", "audio/b", "image/c", "meta/genre")})
    got = select_features(TextModel, feats, n_items=4)
    assert sorted(got) == ["audio/b", "text/a"] and sorted(feats.read) == ["audio/b", "text/a"]
    assert sorted(select_features(AnyContent, {k: _f(k) for k in ("image/c", "audio/b")})) == ["image/c"]


def test_missing_modalities_and_misaligned_rows_are_clear_errors():
    with pytest.raises(ConfigError, match=r"model TextModel: needs modality \['text'\] but got features "
                                          r"\['audio/b'\]"):
        select_features(TextModel, {"audio/b": _f("audio/b")})
    with pytest.raises(ConfigError, match=r"needs at least one content feature \(image, text\) but got none"):
        select_features(AnyContent, {})
    with pytest.raises(DataError, match="feature text/a: feature has 4 rows but the data has 5 items"):
        select_features(TextModel, {"text/a": _f("text/a")}, n_items=5)


def test_store_view_refuses_unknown_keys_and_loads_lazily(tmp_path):
    from mmbench.features.store import FeatureStore

    store = FeatureStore(tmp_path, 3)
    store.put("text/x", np.eye(3, dtype=np.float32))
    store.put("audio/y", np.eye(3, dtype=np.float32))
    fresh = FeatureStore(tmp_path, 3)
    view = fresh.view(["text/x"])
    assert list(view) == ["text/x"] and fresh._cache == {}
    assert view["text/x"].dim == 3 and list(fresh._cache) == ["text/x"]
    with pytest.raises(KeyError):
        view["audio/y"]
    with pytest.raises(ConfigError, match=r"feature 'image/z' is not in this dataset"):
        fresh.view(["image/z"])
