"""Feature selection for models: one check for the runner and the models themselves."""
import numpy as np
import pytest

from mmbench.errors import ConfigError, DataError
from mmbench.features.store import Feature
from mmbench.models import Recommender, select_features, standardize


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


# -- feature preprocessing: each mode against a NumPy computation over the present rows ----------------
def _matrix():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (9, 5)).astype(np.float32)
    x[:, 2] = 7.0  # a constant column
    mask = np.ones(9, bool)
    mask[[1, 6]] = False
    x[~mask] = 100.0  # missing rows hold junk: it must not leak into any statistic
    return x, mask


def test_raw_keeps_the_stored_values_and_zeroes_missing_rows():
    x, mask = _matrix()
    got = standardize(x, mask, "raw")
    assert np.array_equal(got[mask], x[mask]) and not got[~mask].any()


def test_standard_z_scores_each_column_of_the_present_rows():
    x, mask = _matrix()
    got = standardize(x, mask, "standard")
    p = x[mask].astype(np.float64)
    expected = (p - p.mean(0)) / np.where(p.std(0) > 0, p.std(0), 1.0)
    assert np.allclose(got[mask], expected, atol=1e-5) and not got[~mask].any()
    assert np.allclose(got[mask][:, 2], 0.0)  # constant column: centred, not divided by zero


def test_l2_gives_unit_rows():
    x, mask = _matrix()
    got = standardize(x, mask, "l2")
    assert np.allclose(got[mask], x[mask] / np.sqrt((x[mask].astype(np.float64) ** 2).sum(1, keepdims=True)))
    assert not got[~mask].any()


def test_maxabs_divides_by_the_largest_absolute_present_value():
    x, mask = _matrix()
    x[0, 0] = -50.0
    got = standardize(x, mask, "maxabs")
    assert np.allclose(got[mask], x[mask] / 50.0) and not got[~mask].any()  # the missing rows' 100 ignored


def test_pca_projects_on_the_leading_principal_axes_of_the_present_rows():
    x, mask = _matrix()
    got = standardize(x, mask, "pca", pca_dim=3)
    assert got.shape == (9, 3) and not got[~mask].any()
    centred = x[mask].astype(np.float64) - x[mask].mean(0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:3].T
    axes = axes * np.sign(axes[np.abs(axes).argmax(0), np.arange(3)])  # the documented sign rule
    assert np.allclose(got[mask], centred @ axes, atol=1e-4)
    assert np.allclose((got[mask].astype(np.float64) ** 2).sum(0), sv[:3] ** 2, rtol=1e-4)  # variances, descending
    assert standardize(x, mask, "pca", pca_dim=64).shape == (9, 5)  # never more components than columns


def test_unknown_preprocessing_is_refused():
    x, mask = _matrix()
    with pytest.raises(ValueError, match="unknown preprocessing"):
        standardize(x, mask, "zca")


# -- imputation of missing rows from the other modalities (missing="impute") --------------------
def _knn_fill_by_hand(xs, ms, j, i, k):
    """Item i's fill for key j, by NumPy: for each other key l the item has, the mean key-j row
    of its k nearest items by cosine on key l among the items that have both keys; then the
    mean over those keys (None when there is none)."""
    fills = []
    for l, (x, m) in enumerate(zip(xs, ms)):
        if l == j or not m[i]:
            continue
        donors = np.flatnonzero(ms[j] & m)
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = unit[donors] @ unit[i]
        nearest = donors[np.argsort(-sim, kind="stable")[:k]]
        fills.append(xs[j][nearest].mean(0))
    return np.mean(fills, 0) if fills else None


def test_neighbour_fills_are_the_cross_modal_knn_means_by_hand():
    import torch

    from mmbench.models.content import neighbour_fills

    rng = np.random.default_rng(3)
    n = 40
    xs = [rng.normal(size=(n, d)).astype(np.float32) for d in (5, 3, 4)]
    ms = [rng.random(n) > p for p in (0.3, 0.2, 0.5)]
    ms[0][0] = ms[1][0] = ms[2][0] = False  # item 0 has nothing to impute from
    fills = neighbour_fills([torch.as_tensor(x) for x in xs], [torch.as_tensor(m) for m in ms], k=4)
    for j in range(3):
        rows, values = fills[j]
        want = {i: _knn_fill_by_hand(xs, ms, j, i, 4) for i in np.flatnonzero(~ms[j])}
        assert sorted(rows.tolist()) == sorted(i for i, v in want.items() if v is not None)
        assert 0 not in rows.tolist()
        for r, v in zip(rows.tolist(), values.numpy()):
            np.testing.assert_allclose(v, want[r], rtol=1e-5, atol=1e-6)


def test_an_imputing_projector_projects_the_fill_and_reports_it_present():
    import torch

    from mmbench.models import ModalityProjector
    from mmbench.models.content import ContentFeature, modality_dropped

    rng = np.random.default_rng(5)
    n = 30
    feats = {k: ContentFeature(k, rng.normal(size=(n, d)).astype(np.float32), np.ones(n, bool))
             for k, d in (("audio/a", 6), ("text/t", 4))}
    proj = ModalityProjector(feats, 8, impute=True)
    plain = ModalityProjector(feats, 8)
    plain.load_state_dict(proj.state_dict())
    dropped = np.array([2, 7, 11])
    with torch.no_grad(), modality_dropped(proj, "text/t", dropped), modality_dropped(plain, "text/t", dropped):
        emb, present = proj()
        emb_plain, present_plain = plain()
    xs = [feats["audio/a"].values, feats["text/t"].values]
    ms = [np.ones(n, bool), np.ones(n, bool)]
    ms[1][dropped] = False
    for i in dropped:
        fill = torch.as_tensor(_knn_fill_by_hand(xs, ms, 1, i, 10), dtype=torch.float32)
        torch.testing.assert_close(emb[1, i], proj.proj[1](fill))
        assert present[1, i] and not present_plain[1, i]
        torch.testing.assert_close(emb_plain[1, i], plain.missing[1])  # the learned token without imputation
    keep = np.setdiff1d(np.arange(n), dropped)
    torch.testing.assert_close(emb[:, keep], emb_plain[:, keep])
    with torch.no_grad():
        assert proj()[1].all()  # leaving the block restores the masks, and the fills follow them
