"""Late and hybrid fusion: learned weights and rank-level fusion (ranx)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmbench.check import check_model
from mmbench.evaluate.ranking import evaluate_ranking

from ..helpers import RANX_COMPILED, interpreted_ranx_env
from .common import _fit


# -- late fusion: weights and rank-level fusion ------------------------------------------------------
def test_late_fusion_weights(tiny):
    m = _fit("late-fusion", tiny, epochs=3, batch_size=64)
    w = m.fusion_weights()
    assert list(w) == ["audio/synthetic", "image/synthetic", "text/synthetic", "id"]
    assert sum(w.values()) == pytest.approx(4.0)
    assert len(set(round(v, 6) for v in w.values())) > 1  # learned, not fixed
    h = _fit("hybrid-fusion", tiny, epochs=2, batch_size=64, use_id=False)
    assert list(h.fusion_weights()) == ["early", "audio/synthetic", "image/synthetic", "text/synthetic"]


# Rank fusion calls ranx (see tests/helpers.py, RANX_COMPILED): the tests that fuse run in one
# child pytest with numba's JIT off, or here with MMBENCH_TEST_RANX_JIT=1.
_IN_CHILD = os.environ.get("MMBENCH_RANX_CHILD") == "1"
fuses_with_ranx = pytest.mark.skipif(not (_IN_CHILD or RANX_COMPILED),
                                     reason="run by test_rank_fusion_with_ranx_interpreted in a child pytest")


@pytest.mark.slow
@pytest.mark.skipif(_IN_CHILD or RANX_COMPILED, reason="the rank-fusion tests run in this process")
def test_rank_fusion_with_ranx_interpreted():
    env = dict(interpreted_ranx_env(), MMBENCH_RANX_CHILD="1")
    names = ["test_rank_fuse_matches_hand_computed_rrf", "test_late_fusion_rank_fusion_gives_a_valid_ranking"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           *[f"{Path(__file__).as_posix()}::{n}" for n in names]],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert done.returncode == 0 and f"{len(names)} passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.slow
@fuses_with_ranx
def test_rank_fuse_matches_hand_computed_rrf():
    from mmbench_baselines.fusion import rank_fuse

    s1 = torch.tensor([[5.0, 4, 3, 2, 1]])  # ranking 0 1 2 3 4
    s2 = torch.tensor([[1.0, 5, 4, 3, 2]])  # ranking 1 2 3 4 0
    # depth 3: lists [0 1 2] and [1 2 3]; RRF(k=60): 1 -> 1/62+1/61, 2 -> 1/63+1/62, 0 -> 1/61, 3 -> 1/63
    out = rank_fuse([s1, s2], method="rrf", depth=3)
    assert torch.argsort(out[0], descending=True).tolist() == [1, 2, 0, 3, 4]
    assert (out[0, [1, 2, 0, 3]] > 1).all() and out[0, 4] < 0  # item 4 is in no list: below the fused ones
    # excluding item 1 (e.g. a training item): lists [0 2 3] and [2 3 4]
    out = rank_fuse([s1, s2], method="rrf", depth=3, exclude=(torch.tensor([0]), torch.tensor([1])))
    assert torch.argsort(out[0], descending=True).tolist() == [2, 3, 0, 4, 1]
    # weighted sum with weights favouring the second run: min-max scores 1 -> 0.75*1 + 0.25*... (s2 wins)
    out = rank_fuse([s1, s2], method="wsum", depth=5, weights=[0.1, 0.9])
    assert torch.argsort(out[0], descending=True).tolist()[:2] == [1, 2]


@pytest.mark.slow
@fuses_with_ranx
def test_late_fusion_rank_fusion_gives_a_valid_ranking(tiny):
    from mmbench_baselines.fusion import _rows, rank_fuse

    m = _fit("late-fusion", tiny, epochs=3, batch_size=64, rank_fusion="rrf", fusion_depth=10)
    users = torch.arange(tiny.n_users)
    s = m.score(users)
    assert s.shape == (tiny.n_users, tiny.n_items) and torch.isfinite(s).all()
    indptr, indices = tiny.csr("train")
    for u in range(tiny.n_users):
        seen = indices[indptr[u]:indptr[u + 1]]
        top = torch.argsort(s[u], descending=True)[:10].tolist()
        assert not set(top) & set(seen.tolist()), "a training item is in the fused list"
        assert len(set(s[u, top].tolist())) == 10  # a strict order
    # the same as fusing the per-scorer rankings of the trained model by hand
    mod = m.module_
    up = mod.user_parts(users)
    v, _ = m.item_table()
    vp = v.view(v.shape[0], len(mod.names), mod.dim)
    blocks = [up[:, j] @ vp[:, j].T for j in range(len(mod.names))]
    with torch.no_grad():
        ref = rank_fuse(blocks, method="rrf", depth=10, exclude=_rows(m.train_csr_, users), base=m.module_.users(users) @ v.T)
    assert torch.equal(torch.argsort(s, 1, descending=True)[:, :10], torch.argsort(ref, 1, descending=True)[:, :10])
    res = evaluate_ranking(m.score, tiny, "test", ["recall@10"], beyond_accuracy=False)
    assert 0.0 <= res.metrics["recall@10"] <= 1.0
    assert all(r.passed for r in check_model("late-fusion", dataset=tiny, params={"rank_fusion": "wsum"}))
