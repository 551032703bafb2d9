"""Most-popular: rank items by their number of training interactions."""
from __future__ import annotations

import torch

from mmbench.models import Recommender


class Pop(Recommender):
    """Popularity baseline: the same ranking for every user (ties broken by item index).

    Needs no modality. A floor that any personalised model should beat.
    """

    paper = "non-personalised baseline"

    def fit(self, data, features=None, *, seed=0, device="cpu", context=None):
        from mmbench.models import resolve_device

        self.device_ = resolve_device(device)
        # equal counts are ranked by item index by the evaluation itself
        self.scores_ = torch.as_tensor(data.item_popularity(), dtype=torch.float32, device=self.device_)
        self.fit_info_ = {"best_epoch": 0, "epochs_run": 0}
        return self

    def score(self, users):
        users = torch.as_tensor(users, device=self.device_)
        return self.scores_.unsqueeze(0).repeat(len(users), 1)
