"""The Cornac adapter on ml-100k: ids mapped back to ours, scores from Cornac's own code, and
the epoch-by-epoch driving of its torch models identical to Cornac's own uninterrupted fit."""
from types import SimpleNamespace

import numpy as np
import pytest

cornac = pytest.importorskip("cornac")

from mmbench.parity.adapters import mapping  # noqa: E402
from mmbench.parity.adapters.cornac import CornacModel, content_matrix  # noqa: E402

pytestmark = pytest.mark.slow


def features(n_items, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    return {"text/x": SimpleNamespace(values=rng.normal(3.0, 2.0, (n_items, dim)).astype(np.float32),
                                      mask=np.ones(n_items, bool))}


def stop_at(last, seen):
    def epoch_end(epoch, loss):
        seen.append((epoch, loss))
        return epoch >= last
    return epoch_end


def test_mostpop_scores_are_training_counts_in_our_item_order(ml100k):
    peer = CornacModel(ml100k, {}, mapping("cornac", "pop", {}), 0)
    peer.train(stop_at(1, []), 1)
    counts = np.bincount(ml100k.pairs("train")[1], minlength=ml100k.n_items)
    s = peer.score(np.array([0, 5, 942])).numpy()
    assert s.shape == (3, ml100k.n_items)
    seen = counts > 0
    assert (s[:, seen] == counts[seen]).all()
    assert (s[:, ~seen] == counts[seen].min()).all()  # unknown to training: Cornac's lowest known score


def test_bpr_scores_come_from_cornacs_factors_through_its_id_map(ml100k):
    p = {"embedding_dim": 8, "lr": 0.05, "reg": 0.01}
    peer = CornacModel(ml100k, {}, mapping("cornac", "bpr-sgd", p), 0)
    seen = []
    peer.train(stop_at(2, seen), 10)
    assert [e for e, _ in seen] == [1, 2]
    m, users = peer.model, [3, 17]
    uid, iid = m.train_set.uid_map, m.train_set.iid_map
    items = [iid[str(i)] for i in range(ml100k.n_items)]
    want = np.stack([m.u_factors[uid[str(u)]] @ m.i_factors[items].T for u in users])
    assert np.allclose(peer.score(np.array(users)).numpy(), want, atol=1e-5)
    assert not m.use_bias and (m.i_biases == 0).all()


@pytest.mark.parametrize("name,params", [
    ("vbpr", {"embedding_dim": 4, "content_dim": 3, "lr": 0.01, "batch_size": 8192, "reg": 1e-4}),
    ("amr", {"embedding_dim": 4, "lr": 0.01, "batch_size": 8192, "reg_item": 1e-3, "reg_user": 0.1,
             "adv_weight": 1.0, "eps": 0.1}),
])
def test_driving_the_torch_models_epoch_by_epoch_is_cornacs_own_fit(ml100k, name, params):
    from cornac.eval_methods import BaseMethod

    feats = features(ml100k.n_items)
    m = mapping("cornac", name, params)
    m.features = "raw"
    peer = CornacModel(ml100k, feats, m, 0)
    seen = []
    peer.train(stop_at(1, seen), 3)  # stopped by us after the first of three epochs
    assert len(seen) == 1 and seen[0][0] == 1 and seen[0][1] > 0
    # Cornac alone: the same data, seed and settings, one epoch, no driver
    bm = BaseMethod.from_splits(train_data=_triples(ml100k, "train"),
                                test_data=_triples(ml100k, "test"), val_data=_triples(ml100k, "valid"),
                                exclude_unknowns=False, seed=0, verbose=False,
                                item_image=cornac.data.ImageModality(features=content_matrix(feats, "raw"),
                                                                     ids=[str(i) for i in range(ml100k.n_items)]))
    alone = getattr(cornac.models, m.peer_model)(n_epochs=1, seed=0, verbose=False, **m.settings)
    alone.fit(bm.train_set, bm.val_set)
    for attr, value in peer.state_dict().items():
        assert np.array_equal(value, getattr(alone, attr)), attr
    assert np.array_equal(peer.score(np.array([4])).numpy()[0], alone.score(alone.train_set.uid_map["4"])[
        [alone.train_set.iid_map[str(i)] for i in range(ml100k.n_items)]])


def _triples(ds, part):
    u, i, _ = ds.pairs(part)
    return [(str(a), str(b), 1.0) for a, b in zip(u.tolist(), i.tolist())]


def test_content_matrix_is_our_standardisation_or_the_stored_values():
    f = {"b/y": SimpleNamespace(values=np.array([[1.0], [3.0], [9.0]], np.float32), mask=np.array([1, 1, 0], bool)),
         "a/x": SimpleNamespace(values=np.array([[2.0, 0.0], [4.0, 1.0], [6.0, 2.0]], np.float32),
                                mask=np.ones(3, bool))}
    raw = content_matrix(f, "raw")
    assert raw.tolist() == [[2.0, 0.0, 1.0], [4.0, 1.0, 3.0], [6.0, 2.0, 0.0]]  # sorted keys; missing row zero
    std = content_matrix(f, "standard")
    x = np.array([2.0, 4.0, 6.0])
    assert np.allclose(std[:, 0], (x - x.mean()) / x.std()) and np.allclose(std[:, 2], [-1.0, 1.0, 0.0])
