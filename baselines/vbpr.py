"""VBPR: matrix factorisation plus a learned projection of item content, as in the paper
(``vbpr``) and as in MMRec (``vbpr-mmrec``), and its rating variant."""
from __future__ import annotations

import math

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


class VBPR(ContentRecommender, reg=1e-4, features="raw"):
    """The paper's VBPR (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from
    Implicit Feedback", AAAI 2016): BPR-MF whose items also carry ``E f_i``, a learned linear
    projection of their content features, and a content bias ``beta' . f_i``. (MMRec's
    VBPR, a different model, is ``vbpr-mmrec``.)

    Paper defaults kept: K = K' = 10 (ID and content factors split evenly, 20 dimensions in
    total as in the paper's comparisons), item and content biases, no penalty on the
    projection E (lambda_E = 0), uniform negative sampling, and the features as extracted
    (the paper's raw 4096-d CNN features: ``features="raw"``; ``standard`` z-scores each
    column, which Cornac's parity run used). Deviations: the paper uses one visual CNN
    feature; here f_i is every available modality (text/image/audio/video, any non-empty
    subset), with a learned per-key vector for missing rows; training uses Adam on
    mini-batches (lr 1e-3, batch 2048) with early stopping on validation instead of SGD with
    bootstrap sampling, and the L2 penalty (``reg``) is the mean over the batch (RecBole
    convention), so its scale differs from the paper's lambda_Theta.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "learned token (a per-key missing vector)"

    paper = "He & McAuley, AAAI 2016"
    embedding_dim = Param(10, ge=1, help="K: size of the ID factors")
    content_dim = Param(10, ge=1, help="K': size of the content factors (projection of the features)")
    reg = Param(1e-4, ge=0.0, space=(1e-5, 1e-4, 1e-3), help="L2 weight on the batch's user (and ID) embeddings")

    def build_module(self, data, features):
        return _VBPR(features, data.n_users, data.n_items, self.embedding_dim, self.content_dim, None)


class _MMRecVBPR(nn.Module):
    """score = p_u . [q_i ; E f_i]: p_u of size K + K', q_i of size K, E f_i the item's
    content (every key side by side) mapped linearly to K'; no item or content bias."""

    def __init__(self, features, n_users, n_items, k, k_content):
        super().__init__()
        self.user = nn.Embedding(n_users, k + k_content)
        self.id = nn.Embedding(n_items, k)
        nn.init.xavier_uniform_(self.user.weight)
        nn.init.xavier_uniform_(self.id.weight)
        self.proj = ModalityProjector(features, k_content)
        # one linear map of the concatenated features, split by key: xavier-normal over its
        # whole width, zero bias (MMRec's initialisation of that map)
        std = math.sqrt(2.0 / (sum(f.dim for f in features.values()) + k_content))
        for layer in self.proj.proj:
            nn.init.normal_(layer[-1].weight, std=std)
            nn.init.zeros_(layer[-1].bias)

    def users(self, u):
        return self.user(u)

    def items(self, i):
        emb, _ = self.proj(i)
        ids = self.id.weight if i is None else self.id(i)
        return torch.cat([ids, emb.sum(0)], -1), None


class VBPRMMRec(VBPR, embedding_dim=64, content_dim=64, epochs=1000, patience=20):
    """MMRec's VBPR (the toolbox of Zhou, "MMRec: Simplifying Multimodal Recommendation",
    2023: its ``src/models/vbpr.py`` and ``src/configs/model/VBPR.yaml``), not the paper's
    (that is ``vbpr``): score = p_u . [q_i ; E f_i] with 64 ID and 64 content
    dimensions (a 128-d user vector), no item or content bias, every feature key's raw
    features side by side through one linear map (with a bias), and the L2 term on the whole
    batch as scored, projected content included: ``reg`` x (|P_u| + |V_pos| + |V_neg|) /
    batch with Frobenius norms, not squared (MMRec's EmbLoss).

    MMRec's defaults: raw features, kept fixed; xavier-uniform user and ID tables,
    xavier-normal projection with zero bias; Adam lr 1e-3, batch 2048, at most 1000 epochs,
    stopping after 20 evaluations without a better validation value; ``reg`` is searched
    there over {1e-5, ..., 1, 2} (its space here, the middle value 1e-2 the default). MMRec
    selects on validation Recall@20 and masks only the training items at test (its
    ``quick_start.py``): ``mmbench run --main-metric recall@20 --no-mask-valid-at-test``. Deviations: a
    missing feature row is a learned per-key vector (MMRec has no missing rows), and the BPR
    loss is -log sigmoid, not -log(1e-10 + sigmoid).
    """

    paper = "He & McAuley, AAAI 2016, as implemented in MMRec (Zhou, 2023)"
    reg = Param(1e-2, ge=0.0, space=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 2.0),
                help="weight of the Frobenius norms of the batch's user and item vectors (MMRec's EmbLoss)")

    def build_module(self, data, features):
        return _MMRecVBPR(features, data.n_users, data.n_items, self.embedding_dim, self.content_dim)

    def penalty(self, u, i, j, vectors):
        """MMRec's EmbLoss on the batch as scored: sum of the Frobenius norms of the user,
        positive and negative item vectors (projected content included) over the batch size."""
        return sum(t.norm() for t in vectors) / len(u)


class VBPRRating(RatingTask, VBPR, lr=5e-3, reg=0.05, batch_size=1024, epochs=100, patience=5,
                 features="standard"):
    """Content-aware biased MF for explicit ratings (the rating track): Koren et al.'s biased
    MF (IEEE Computer 2009) with VBPR's content factors (He & McAuley, AAAI 2016):
    r_ui = mu + b_u + b_i + beta' . f_i + gamma_u . gamma_i + theta_u . (E f_i),
    squared loss with L2 on the batch's factors and biases (``reg``), Adam, early stopping
    on validation RMSE. Cold items get a content-based rating through beta' . f_i and E f_i.
    Defaults follow the ``mf`` baseline (lr 5e-3, reg 0.05, batch 1024) with VBPR's
    K = K' = 10; factors start small (std 0.01) as in ``mf``; the features are z-scored per
    column (``features``: the benchmark's choice, no reference implementation to follow).
    """

    paper = "He & McAuley, AAAI 2016; Koren et al., IEEE Computer 2009"

    def build_module(self, data, features):
        return _VBPR(features, data.n_users, data.n_items, self.embedding_dim, self.content_dim, 0.01,
                     item_bias=False)
