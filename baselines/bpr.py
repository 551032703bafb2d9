"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking."""
from __future__ import annotations

from torch import nn

from mmbench.models import Param, TorchRecommender, bpr_loss, l2


class _MF(nn.Module):
    def __init__(self, n_users, n_items, dim):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.user.weight)
        nn.init.xavier_normal_(self.item.weight)


class BPR(TorchRecommender):
    """BPR-MF (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback",
    UAI 2009), trained with Adam on mini-batches of (user, positive, uniform negative).

    Defaults follow RecBole's BPR (64-d, lr 1e-3, batch 2048, xavier-normal init) with an
    L2 penalty on the batch's embeddings and early stopping on the validation metric.
    Needs no modality.
    """

    paper = "Rendle et al., UAI 2009"
    embedding_dim = Param(64, ge=1, help="size of the user and item factors")
    reg = Param(0.0, ge=0.0, help="L2 weight on the batch's embeddings (mean over the batch)")

    def build(self, data, features):
        return _MF(data.n_users, data.n_items, self.embedding_dim)

    def loss(self, batch):
        u, i, j = batch
        m = self.module_
        eu, ei, ej = m.user(u), m.item(i), m.item(j)
        loss = bpr_loss((eu * ei).sum(1), (eu * ej).sum(1))
        if self.reg:
            loss = loss + self.reg * l2(eu, ei, ej)
        return loss

    def score_module(self, users):
        m = self.module_
        return m.user(users) @ m.item.weight.T
