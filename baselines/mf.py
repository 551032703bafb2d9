"""Biased matrix factorisation for explicit ratings (the rating track)."""
from __future__ import annotations

import torch
from torch import nn

from mmbench.nn import TorchRecommender


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


class MF(TorchRecommender):
    """Biased MF (Koren, Bell & Volinsky, "Matrix Factorization Techniques for Recommender
    Systems", IEEE Computer 2009): r_ui = mu + b_u + b_i + p_u . q_i, squared loss with L2
    on the batch's factors and biases, Adam. Predicts ratings (RMSE/MAE) and ranks items
    by predicted rating. Early stopping on validation RMSE. Needs no modality.
    """

    task = "rating"
    paper = "Koren et al., IEEE Computer 2009"

    def __init__(self, embedding_dim: int = 32, lr: float = 5e-3, reg: float = 0.05, batch_size: int = 1024,
                 epochs: int = 100, patience: int = 5, eval_every: int = 1):
        self.embedding_dim = embedding_dim
        self.lr = lr
        self.reg = reg
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.eval_every = eval_every

    def build(self, data, features):
        self.ratings_t_ = torch.as_tensor(data.rating, dtype=torch.float32, device=self.device_)
        return _BiasedMF(data.n_users, data.n_items, self.embedding_dim, float(data.rating.mean()))

    def batches(self, data, epoch):
        n = len(data)
        perm = torch.randperm(n, generator=self.generator_).to(self.users_t_.device)
        for s in range(0, n, self.batch_size):
            idx = perm[s:s + self.batch_size]
            yield self.users_t_[idx], self.items_t_[idx], self.ratings_t_[idx]

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
