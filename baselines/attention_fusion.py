"""Attention fusion: each item weighs its own modality embeddings (weights inspectable)."""
from __future__ import annotations

import torch
from torch import nn

from mmbench.errors import ConfigError
from mmbench.models import (MISSING_MODES, ContentRecommender, ModalityProjector, Param, RatingTask, UserDotItem,
                            init_embedding)


class _AttentionFusion(UserDotItem, nn.Module):
    """Item vector = sum_k a_k(i) e_k(i) (+ ID embedding), a(i) = softmax over the item's
    keys of q . tanh(W e_k(i) + b). With ``variant="cross"`` the key embeddings first attend
    to each other (multi-head attention across modalities, residual + layer norm) and the
    pooling runs on the result.

    Missing rows: ``missing="drop"`` masks them out of the softmax (zero weight) and, in the
    cross variant, out of the cross-modal attention; an item with no content at all falls
    back to attending over the learned per-key missing embeddings. ``missing="embed"`` keeps
    the learned missing embedding as the key's value and lets it be attended to.
    ``missing="impute"`` imputes it from the item's other modalities (k-NN by each other
    key) and attends to it as content.
    """

    def __init__(self, features, n_users, n_items, dim, att_dim, variant, heads, missing, use_id, dropout):
        super().__init__()
        self.proj = ModalityProjector(features, dim, dropout=dropout, impute=missing == "impute")
        self.variant = variant
        self.missing_mode = missing
        self.user = init_embedding(n_users, dim)
        self.id = init_embedding(n_items, dim, 0.01) if use_id else None
        self.att = nn.Sequential(nn.Linear(dim, att_dim), nn.Tanh(), nn.Linear(att_dim, 1, bias=False))
        if variant == "cross":
            self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm = nn.LayerNorm(dim)

    def attend(self, items=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(content vectors (n, dim), attention weights (n, n_keys))."""
        emb, present = self.proj(items)  # (K, n, dim), (K, n)
        e = emb.transpose(0, 1)  # (n, K, dim)
        valid = present.T  # (n, K)
        if self.missing_mode == "embed":
            valid = torch.ones_like(valid)
        valid = valid | ~valid.any(1, keepdim=True)  # nothing present: use the missing embeddings
        if self.variant == "cross":
            h, _ = self.cross(e, e, e, key_padding_mask=~valid, need_weights=False)
            e = self.norm(e + h)
        logits = self.att(e).squeeze(-1).masked_fill(~valid, -torch.inf)
        w = torch.softmax(logits, dim=1)
        return (w.unsqueeze(-1) * e).sum(1), w

    def items(self, i):
        return self.with_id(self.attend(i)[0], i), None


class AttentionFusion(ContentRecommender):
    """Attention fusion: every modality feature is projected to a shared space (with a
    learned vector for a missing row) and each item pools its projections with its own
    attention weights, additive attention as in Bahdanau, Cho & Bengio (ICLR 2015) and, for
    per-item weighting of an item's components in recommendation, Chen et al., "Attentive
    Collaborative Filtering" (SIGIR 2017) and Liu et al., "User Diverse Preference Modeling
    by Multimodal Attentive Metric Learning" (MM 2019). ``variant="cross"`` adds a cross-modal
    multi-head attention layer before pooling (Tsai et al., "Multimodal Transformer for
    Unaligned Multimodal Language Sequences", ACL 2019). The item's ID embedding is added
    to the pooled content (``use_id``); score = dot product with a user embedding, BPR.

    ``attention_weights()`` returns the (n_items, n_keys) weights (rows sum to 1, columns in
    ``feature_keys_`` order). With ``missing="drop"`` (default) a missing row gets weight 0.
    Defaults are the benchmark's (64-d, 32-d attention, 2 heads, Adam lr 1e-3, batch 2048,
    features z-scored per column and kept fixed: ``features``, ``finetune_features``).
    Uses any non-empty subset of text/image/audio/video.
    """

    paper = "Chen et al., SIGIR 2017; Liu et al., MM 2019; Tsai et al., ACL 2019 (cross-modal)"
    embedding_dim = Param(64, ge=1, help="size of the user, item and projected modality vectors")
    attention_dim = Param(32, ge=1, help="hidden size of the additive attention")
    variant = Param("additive", choices=("additive", "cross"), help="cross: cross-modal attention before pooling")
    heads = Param(2, ge=1, help="heads of the cross-modal attention (must divide embedding_dim)")
    missing = Param("drop", choices=MISSING_MODES,
                    help="a missing row: weight 0 (drop), a learned vector (embed) or imputed "
                         "from the item's other modalities (impute)")
    use_id = Param(True, help="add the item's ID embedding to its pooled content")
    dropout = Param(0.0, ge=0.0, lt=1.0, help="dropout on the features before projection")

    def build_module(self, data, features):
        if self.variant == "cross" and self.embedding_dim % self.heads:
            raise ConfigError(f"embedding_dim {self.embedding_dim} is not divisible by heads {self.heads}",
                              where=f"model {type(self).__name__}")
        return _AttentionFusion(features, data.n_users, data.n_items, self.embedding_dim, self.attention_dim,
                                self.variant, self.heads, self.missing, self.use_id, self.dropout)

    def attention_weights(self, items=None) -> torch.Tensor:
        """Attention weights (n_items or len(items), n_keys) on the CPU; rows sum to 1."""
        m = self.module_
        was = m.training
        m.eval()
        with torch.no_grad():
            if items is not None:
                items = torch.as_tensor(items, dtype=torch.long, device=self.device_)
            w = m.attend(items)[1].cpu()
        m.train(was)
        return w


class AttentionFusionRating(RatingTask, AttentionFusion, embedding_dim=32, lr=5e-3, reg=0.05, batch_size=1024,
                            epochs=100, patience=5):
    """Attention fusion for explicit ratings (the rating track): r_ui = mu + b_u + b_i +
    p_u . (attention-pooled content + ID), squared loss, L2 on the batch's vectors and
    biases (``reg``), early stopping on validation RMSE. Defaults as ``mf`` (32-d, lr 5e-3,
    reg 0.05, batch 1024)."""

    reg = Param(0.05, ge=0.0, space=(0.005, 0.05, 0.5), help="L2 weight on the batch's vectors and biases")
