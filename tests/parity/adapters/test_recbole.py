"""The RecBole adapter on ml-100k: our split read back by RecBole, its own epochs, scores
through RecBole's own token map."""
import numpy as np
import pytest

pytest.importorskip("recbole")

from mmbench.parity.adapters import Mapping, mapping  # noqa: E402
from mmbench.parity.adapters.recbole import RecBoleModel  # noqa: E402
from mmbench.parity.recbole_compat import recbole_env  # noqa: E402

pytestmark = pytest.mark.slow
BPR = {"embedding_dim": 8, "lr": 0.01, "batch_size": 4096, "reg": 0.0}


def test_recbole_reads_our_split_and_scores_through_its_token_map(ml100k, tmp_path):
    peer = RecBoleModel(ml100k, mapping("recbole", "bpr", BPR), 0, tmp_path)
    data = peer.train_data._dataset
    assert data.inter_num == len(ml100k.pairs("train")[0])
    seen = []
    peer.train(lambda epoch, loss: seen.append((epoch, loss)) or epoch >= 2, 10)
    assert [e for e, _ in seen] == [1, 2] and seen[1][1] < seen[0][1]
    users = [0, 7, 942]
    u = data.token2id("user_id", [str(x) for x in users])
    i = data.token2id("item_id", [str(x) for x in range(ml100k.n_items)])
    m = peer.model
    want = (m.user_embedding.weight[u] @ m.item_embedding.weight[i].T).detach().numpy()
    assert np.allclose(peer.score(np.array(users)).numpy(), want, atol=1e-6)


def test_epochs_driven_one_at_a_time_are_recboles_own_fit(ml100k, tmp_path):
    m = mapping("recbole", "bpr", BPR)
    driven = RecBoleModel(ml100k, m, 3, tmp_path / "a")
    driven.train(lambda epoch, loss: epoch >= 2, 5)
    alone = RecBoleModel(ml100k, Mapping(m.peer_model, {**m.settings, "epochs": 2}), 3, tmp_path / "b")
    with recbole_env(tmp_path / "b"):
        alone.trainer.fit(alone.train_data, None, verbose=False, saved=False, show_progress=False)
    for k, v in driven.state_dict().items():
        assert (v == alone.state_dict()[k]).all(), k


def test_bpr_with_l2_has_no_recbole_counterpart():
    from mmbench.errors import ConfigError

    with pytest.raises(ConfigError, match="RecBole's BPR has no L2 term"):
        mapping("recbole", "bpr", {**BPR, "reg": 0.1})
    with pytest.raises(ConfigError, match=r"recbole has no implementation of 'vbpr'.*covered by cornac"):
        mapping("recbole", "vbpr", {})
