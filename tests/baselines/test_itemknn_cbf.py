"""ItemKNN-CBF against a hand computation."""

import numpy as np
import pytest
import torch

from mmbench.data.dataset import TrainData
from mmbench.errors import ConfigError

from .common import _feature


def test_itemknn_cbf_hand_computed():
    # unit 2-d content: a ~ b (cos 0.995), c orthogonal to a, d opposite to a
    vals = [[1, 0], [1, 0.1], [0, 1], [-1, 0]]
    feats = {"text/t": _feature("text/t", vals, [True] * 4)}
    data = TrainData(1, 4, np.array([0]), np.array([0]), np.array([1.0], np.float32), np.array([0]))
    from mmbench_baselines.itemknn_cbf import ItemKNNCBF

    m = ItemKNNCBF(k=1, features="raw").fit(data, feats)
    s = m.score(torch.tensor([0]))[0]
    cos_ab = 1 / np.sqrt(1.01)
    # b's nearest neighbour is a (the user's item); a's is b, c's is b, d has no positive one
    assert s.tolist() == pytest.approx([0.0, cos_ab, 0.0, 0.0], abs=1e-6)
    m2 = ItemKNNCBF(k=3, features="raw").fit(data, feats)
    s2 = m2.score(torch.tensor([0]))[0]
    assert s2.tolist() == pytest.approx([0.0, cos_ab, 0.0, 0.0], abs=1e-6)  # negatives and zeros dropped
    with pytest.raises(ConfigError):
        ItemKNNCBF(k=0).fit(data, feats)
