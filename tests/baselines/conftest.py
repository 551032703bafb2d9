"""Fixtures of the baseline tests: the tiny check dataset, synthetic data with cold items, planted data with two modalities."""

import numpy as np
import pytest
import torch
from mmbench_baselines.bpr import BPR
from mmbench_baselines.pop import Pop

from mmbench.check import check_dataset, temporary_home
from mmbench.synthetic import evaluate_cold, make_synthetic

from ..helpers import planted_rows, write_card, write_inter
from .common import DIM, N_ITEMS, N_USERS, PER_USER, SEED, _train, fit, ndcg


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny data: one thread is fastest on a shared machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    with temporary_home():
        yield check_dataset()


# -- cold start: content beats ID-only models on items unseen in training -------------------------
@pytest.fixture(scope="module")
def cold_setup():
    with temporary_home():
        ds = make_synthetic(seed=0)
        bpr = _train("bpr", ds)
        yield ds, evaluate_cold(bpr.score, ds)


# -- rating track ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rating_data():
    with temporary_home():
        yield make_synthetic(seed=1)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(prepared dataset, features {key: Feature}, planted item factors aligned to the item index)."""
    from mmbench.data.cards import find_card
    from mmbench.data.prepare import prepare

    root = tmp_path_factory.mktemp("zoo_b")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMBENCH_HOME", str(root / "home"))
        mp.setenv("MMBENCH_CARDS", str(root / "cards"))
        (root / "cards").mkdir()
        write_inter(root / "d" / "zb.inter",
                    planted_rows(n_users=N_USERS, n_items=N_ITEMS, per_user=PER_USER, seed=SEED, dim=DIM))
        write_card(root / "cards", "zb", root / "d")
        ds = prepare(find_card("zb"))
    rng = np.random.default_rng(SEED)  # planted_rows draws U then V from this generator
    rng.normal(size=(N_USERS, DIM))
    V = rng.normal(size=(N_ITEMS, DIM))[[int(r[1:]) for r in ds.item_raw_ids()]]
    r = np.random.default_rng(100)
    feats = {}
    for key, d, missing in (("text/planted", 24, 0.2), ("image/planted", 32, 0.25)):
        # a different linear view of the same item factors per modality, plus noise and an offset
        x = V @ r.normal(size=(DIM, d)) + 0.3 * r.normal(size=(len(V), d)) + 2.0 * r.normal(size=d)
        feats[key] = ds.features.put(key, x.astype(np.float32), r.random(len(V)) > missing)
    # stored but not in `feats`: a key whose every row is missing
    ds.features.put("audio/absent", np.zeros((len(V), 5), np.float32), np.zeros(len(V), bool))
    return ds, feats, V


@pytest.fixture(scope="module")
def floors(planted):
    """Test NDCG@10 of pop and of BPR-MF (same training settings as the models below)."""
    ds, _, _ = planted
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: set up before the per-test fixture runs
    try:
        bpr = fit(BPR(lr=0.01, batch_size=256, epochs=60, patience=10), ds)
        return {"pop": ndcg(Pop().fit(ds.train_data()), ds), "bpr": ndcg(bpr, ds)}
    finally:
        torch.set_num_threads(before)
