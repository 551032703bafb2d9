"""VBPR: matrix factorisation plus a learned projection of item content."""
from __future__ import annotations

import torch
from torch import nn

from mmbench.models import ContentRecommender, ModalityProjector, Param, RatingTask, init_embedding


class _VBPR(nn.Module):
    """x_ui = beta_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i.

    ``E`` and ``beta'`` are one affine projection per feature key into K' + 1 outputs (the
    last is the content bias), summed over keys: exactly E applied to the concatenated
    features, with a learned "missing" vector in place of an absent key's projection.
    """

    def __init__(self, features, n_users, n_items, k, k_content, id_std, item_bias=True):
        super().__init__()
        self.k_content = k_content
        self.item_bias = item_bias
        self.gamma_user = init_embedding(n_users, k, id_std)
        self.gamma_item = init_embedding(n_items, k, id_std)
        self.theta_user = init_embedding(n_users, k_content, id_std)
        if item_bias:
            self.beta_item = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.beta_item.weight)
        self.proj = ModalityProjector(features, k_content + 1)

    def users(self, u):
        return torch.cat([self.gamma_user(u), self.theta_user(u)], -1)

    def content(self, i):
        emb, _ = self.proj(i)
        z = emb.sum(0)
        return z[..., :self.k_content], z[..., self.k_content]

    def items(self, i):
        theta, content_bias = self.content(i)
        gamma = self.gamma_item.weight if i is None else self.gamma_item(i)
        if not self.item_bias:  # the rating head brings its own item bias
            return torch.cat([gamma, theta], -1), content_bias
        beta = (self.beta_item.weight if i is None else self.beta_item(i)).squeeze(-1)
        return torch.cat([gamma, theta], -1), beta + content_bias

    def penalized(self, u, i, j):
        # lambda_E = 0 as in the paper: only the ID factors and biases are penalised
        return [self.gamma_user(u), self.theta_user(u), self.gamma_item(i), self.gamma_item(j),
                self.beta_item(i), self.beta_item(j)]


class VBPR(ContentRecommender, reg=1e-4):
    """VBPR (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
    Feedback", AAAI 2016): BPR-MF whose items also carry ``E f_i``, a learned linear
    projection of their content features, and a content bias ``beta' . f_i``.

    Paper defaults kept: K = K' = 10 (ID and content factors split evenly, 20 dimensions in
    total as in the paper's comparisons), no penalty on the projection E (lambda_E = 0),
    uniform negative sampling. Deviations: the paper uses one visual CNN feature; here f_i is
    every available modality (text/image/audio/video, any non-empty subset), standardised,
    with a learned per-key vector for missing rows; training uses Adam on mini-batches
    (lr 1e-3, batch 2048) with early stopping on validation instead of SGD with bootstrap
    sampling, and the L2 penalty (``reg``) is the mean over the batch (RecBole convention),
    so its scale differs from the paper's lambda_Theta.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "learned token (a per-key missing vector)"

    paper = "He & McAuley, AAAI 2016"
    embedding_dim = Param(10, ge=1, help="K: size of the ID factors")
    content_dim = Param(10, ge=1, help="K': size of the content factors (projection of the features)")
    reg = Param(1e-4, ge=0.0, space=(1e-5, 1e-4, 1e-3), help="L2 weight on the batch's user (and ID) embeddings")

    def build_module(self, data, features):
        return _VBPR(features, data.n_users, data.n_items, self.embedding_dim, self.content_dim, None)


class VBPRRating(RatingTask, VBPR, lr=5e-3, reg=0.05, batch_size=1024, epochs=100, patience=5):
    """Content-aware biased MF for explicit ratings (the rating track): Koren et al.'s biased
    MF (IEEE Computer 2009) with VBPR's content factors (He & McAuley, AAAI 2016):
    r_ui = mu + b_u + b_i + beta' . f_i + gamma_u . gamma_i + theta_u . (E f_i),
    squared loss with L2 on the batch's factors and biases (``reg``), Adam, early stopping
    on validation RMSE. Cold items get a content-based rating through beta' . f_i and E f_i.
    Defaults follow the ``mf`` baseline (lr 5e-3, reg 0.05, batch 1024) with VBPR's
    K = K' = 10; factors start small (std 0.01) as in ``mf``.
    """

    paper = "He & McAuley, AAAI 2016; Koren et al., IEEE Computer 2009"

    def build_module(self, data, features):
        return _VBPR(features, data.n_users, data.n_items, self.embedding_dim, self.content_dim, 0.01,
                     item_bias=False)
