"""Biased matrix factorisation for explicit ratings (the rating track)."""
from __future__ import annotations

import torch
from torch import nn

from mmbench.models import Param, TorchRecommender, rating_batches


class _BiasedMF(nn.Module):
    def __init__(self, n_users, n_items, dim, mean):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.mean = nn.Parameter(torch.tensor(float(mean)), requires_grad=False)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def predict(self, u, i):
        return self.mean + self.user_bias(u).squeeze(-1) + self.item_bias(i).squeeze(-1) + (self.user(u) * self.item(i)).sum(-1)


class MF(TorchRecommender, lr=5e-3, batch_size=1024, epochs=100, patience=5):
    """Biased MF (Koren, Bell & Volinsky, "Matrix Factorization Techniques for Recommender
    Systems", IEEE Computer 2009): r_ui = mu + b_u + b_i + p_u . q_i, squared loss with L2
    on the batch's factors and biases, Adam. Predicts ratings (RMSE/MAE) and ranks items
    by predicted rating. Early stopping on validation RMSE. Needs no modality.
    """

    task = "rating"
    paper = "Koren et al., IEEE Computer 2009"
    embedding_dim = Param(32, ge=1, help="size of the user and item factors")
    reg = Param(0.05, ge=0.0, space=(0.005, 0.05, 0.5), help="L2 weight on the batch's factors and biases")

    def build(self, data, features):
        self.ratings_t_ = torch.as_tensor(data.rating, dtype=torch.float32, device=self.device_)
        return _BiasedMF(data.n_users, data.n_items, self.embedding_dim, float(data.rating.mean()))

    def batches(self, data, epoch):
        return rating_batches(self, data)

    def loss(self, batch):
        u, i, r = batch
        m = self.module_
        pred = m.predict(u, i)
        reg = (m.user(u).pow(2).sum(1) + m.item(i).pow(2).sum(1)
               + m.user_bias(u).squeeze(-1).pow(2) + m.item_bias(i).squeeze(-1).pow(2)).mean()
        return nn.functional.mse_loss(pred, r) + self.reg * reg

    def score_module(self, users):
        m = self.module_
        return (m.mean + m.user_bias(users) + m.item_bias.weight.T + m.user(users) @ m.item.weight.T)

    def predict(self, users, items):
        users = torch.as_tensor(users, dtype=torch.long, device=self.device_)
        items = torch.as_tensor(items, dtype=torch.long, device=self.device_)
        with torch.no_grad():
            return self.module_.predict(users, items)
