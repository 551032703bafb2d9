"""The synthetic multimodal generator: a real prepared dataset with a planted signal."""
import numpy as np
import pytest
import torch

from mmbench.data.dataset import PreparedDataset
from mmbench.errors import ConfigError
from mmbench.synthetic import MODALITY_DIMS, cold_items, evaluate_cold, generate, make_synthetic

SMALL = dict(n_users=60, n_items=80, dim=4, per_user=12, cold_fraction=0.2, missing_fraction=0.25)


def test_prepared_like_any_dataset_and_reproducible(tmp_path):
    ds = make_synthetic(**SMALL, seed=3)
    again = PreparedDataset.load(ds.path)  # fingerprints verified on load
    assert again.fingerprint == ds.fingerprint
    assert ds.manifest["split"] == {"method": "preset", "column": "label"}
    assert ds.features.keys() == ["audio/synthetic", "image/synthetic", "text/synthetic"]
    fps = ds.features.fingerprints()
    # same arguments elsewhere -> same split and features; another seed -> different data
    other_root = make_synthetic(**SMALL, seed=3, root=tmp_path / "elsewhere", name="synthetic2")
    assert other_root.arrays["item"].tolist() == ds.arrays["item"].tolist()
    assert other_root.features.fingerprints() == fps
    assert make_synthetic(**SMALL, seed=4).fingerprint != ds.fingerprint


def test_cold_items_are_never_in_train_and_are_tested():
    ds = make_synthetic(**SMALL, seed=0)
    cold = cold_items(ds)
    train_items = set(ds.pairs("train")[1].tolist())
    assert len(cold) > 0 and not (set(cold.tolist()) & train_items)
    # about cold_fraction of the items are cold, and they are in test
    assert abs(len(cold) / ds.n_items - 0.2) < 0.08
    assert set(cold.tolist()) & set(ds.pairs("test")[1].tolist())
    # every user keeps training interactions
    assert len(np.unique(ds.pairs("train")[0])) == ds.n_users


def test_modalities_have_own_widths_and_missing_rows():
    ds = make_synthetic(**SMALL, seed=0)
    for m in ("text", "image", "audio"):
        f = ds.features.get(f"{m}/synthetic")
        assert f.values.shape == (ds.n_items, MODALITY_DIMS[m])
        missing = ~f.mask
        assert 0.1 < missing.mean() < 0.4  # missing_fraction = 0.25
        assert not f.values[missing].any()  # missing rows carry no values
    one = make_synthetic(**SMALL, modalities=("image",), seed=0, name="img-only")
    assert one.features.keys() == ["image/synthetic"]
    with pytest.raises(ConfigError, match="unknown synthetic modality"):
        make_synthetic(**SMALL, modalities=("smell",))


def _r2(x, y):
    """R^2 of a least-squares fit of y on x (with intercept), on held-out rows."""
    x = np.column_stack([x, np.ones(len(x))])
    half = len(x) // 2
    coef, *_ = np.linalg.lstsq(x[:half], y[:half], rcond=None)
    resid = y[half:] - x[half:] @ coef
    return 1 - resid.var(0).sum() / y[half:].var(0).sum()


def test_features_carry_the_planted_factors():
    g = generate(200, 1500, 4, ("text", "audio"), per_user=5, cold_fraction=0.1, missing_fraction=0.0, noise=0.5,
                 temperature=0.5, seed=1)
    text = g["features"]["text"][0]
    assert _r2(text, g["latent"]) > 0.5
    shuffled = text[np.random.default_rng(0).permutation(len(text))]
    assert _r2(shuffled, g["latent"]) < 0.05
    # the two modalities are different renderings, not copies
    audio = g["features"]["audio"][0]
    assert audio.shape[1] != text.shape[1]


def test_ratings_follow_biases():
    g = generate(300, 200, 4, ("text",), per_user=15, cold_fraction=0.0, missing_fraction=0.0, noise=0.5,
                 temperature=0.5, seed=2)
    r = g["rating"]
    assert set(np.unique(r)) <= {1, 2, 3, 4, 5}
    # item "quality" (last latent column) drives item mean ratings
    means = np.bincount(g["item"], weights=r, minlength=200) / np.maximum(np.bincount(g["item"], minlength=200), 1)
    seen = np.bincount(g["item"], minlength=200) >= 5
    assert np.corrcoef(means[seen], g["latent"][seen, -1])[0, 1] > 0.5


def test_evaluate_cold_oracle_and_adversary():
    ds = make_synthetic(**SMALL, seed=0)
    u, i, _ = ds.pairs("test")
    truth = torch.zeros(ds.n_users, ds.n_items)
    truth[torch.as_tensor(u), torch.as_tensor(i)] = 1.0

    oracle = evaluate_cold(lambda users: truth[users].clone(), ds, metrics=("recall@5", "ndcg@5"))
    assert oracle["recall@5"] == pytest.approx(1.0) and oracle["ndcg@5"] == pytest.approx(1.0)
    adversary = evaluate_cold(lambda users: -truth[users], ds, metrics=("recall@5",))
    # targets ranked last among the cold candidates: never in a top 5 while >= 5 others exist
    assert adversary["recall@5"] == 0.0
    assert oracle["candidates"] == len(cold_items(ds))
    assert oracle["random_recall@5"] == pytest.approx(5 / len(cold_items(ds)))
    # only users with a cold test item are evaluated
    cold = set(cold_items(ds).tolist())
    assert oracle["users"] == len({int(a) for a, b in zip(u, i) if int(b) in cold})
