"""Derived item features from card data: genre multi-hot, knowledge-graph SVD."""
from __future__ import annotations

import numpy as np
import pytest

from mmbench.data.cards import find_card


def test_genre_multihot_by_hand(ml100k):
    from mmbench.features.derived import multihot

    values, mask, meta = multihot(ml100k, "class")
    vocab = meta["vocabulary"]
    assert len(vocab) == 19 and vocab == sorted(vocab)
    header, rows = ml100k.item_attributes()
    toy = next(i for i, r in enumerate(rows) if r[2] == "Toy Story")  # Animation Children's Comedy
    assert {vocab[j] for j in np.flatnonzero(values[toy])} == {"Animation", "Children's", "Comedy"}
    assert mask.all() and values.sum(axis=1).min() >= 1


def test_kg_svd_puts_items_with_shared_entities_together(tmp_path):
    from mmbench.features.derived import kg_svd

    class DS:  # just what kg_svd reads
        def item_raw_ids(self):
            return ["1", "2", "3", "4", "5"]

    (tmp_path / "x.link").write_text("item_id:token\tentity_id:token\n1\tm.1\n2\tm.2\n3\tm.3\n4\tm.4\n")
    kg = ["head_id:token\trelation_id:token\ttail_id:token",
          "m.1\tfilm.actor\ta.x", "m.2\tfilm.actor\ta.x", "m.1\tfilm.genre\tg.y", "m.2\tfilm.genre\tg.y",
          "m.3\tfilm.actor\ta.z", "g.w\tgenre.film\tm.3", "m.4\tfilm.actor\ta.z", "m.4\tfilm.genre\tg.w",
          "m.1\tfilm.actor\ta.only1"]
    (tmp_path / "x.kg").write_text("\n".join(kg) + "\n")
    values, mask, meta = kg_svd(DS(), tmp_path / "x.kg", tmp_path / "x.link", dim=3, min_df=2)
    assert mask.tolist() == [True, True, True, True, False]  # item 5 has no link
    assert values.shape == (5, 3) and not values[4].any()
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(values[0], values[1]) > 0.99 and cos(values[2], values[3]) > 0.99
    assert abs(cos(values[0], values[2])) < 1e-6
    assert meta["entities"] == 4  # a.x g.y a.z g.w (a.only1 is shared by one item only)
    again, _, _ = kg_svd(DS(), tmp_path / "x.kg", tmp_path / "x.link", dim=3, min_df=2)
    assert np.array_equal(values, again)  # deterministic (sign-fixed components)


@pytest.mark.slow
def test_ml100k_derived_features_genre_and_kg(ml100k, tmp_path):
    """`features build-defaults` minus the text encoder: meta/genre + kg/entity-svd64 into store and manifest."""
    import importlib.util
    import shutil
    from pathlib import Path

    from mmbench.data.dataset import PreparedDataset
    from mmbench.features.pipeline import build_derived

    ml100k = PreparedDataset.load(shutil.copytree(ml100k.path, tmp_path / "copy"))  # keep the shared one clean
    feats = {f.key: f for f in build_derived(ml100k, find_card("ml-100k"))}
    assert set(feats) == {"meta/genre", "kg/entity-svd64"}
    assert feats["meta/genre"].dim == 19 and feats["kg/entity-svd64"].dim == 64
    bundled = Path(list(importlib.util.find_spec("recbole").submodule_search_locations)[0]) / "dataset_example"
    linked = {ln.split("\t")[0] for ln in (bundled / "ml-100k" / "ml-100k.link").read_text().splitlines()[1:]}
    unlinked = [i for i, r in enumerate(ml100k.item_raw_ids()) if r not in linked]
    kg = feats["kg/entity-svd64"]
    assert len(unlinked) > 0 and not kg.mask[unlinked].any() and not kg.values[unlinked].any()
    assert kg.mask.sum() > 0.9 * ml100k.n_items
    assert ml100k.manifest["features"] == {k: f.fingerprint for k, f in feats.items()}
    assert ml100k.manifest["feature_provenance"]["meta/genre"] == {
        "source": "the movie's genres (u.item)", "behaviour": False, "interactions": "none", "leaks": False}
