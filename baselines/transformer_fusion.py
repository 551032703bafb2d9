"""Transformer fusion: aligned modality projections fused by a small pre-norm Transformer."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmbench.errors import ConfigError
from mmbench.models import ContentRecommender, FastDropout, ModalityProjector, Param, UserDotItem, init_embedding

from .subspace_alignment import view_alignment


class _TransformerFusion(UserDotItem, nn.Module):
    """Tokens per item: [CLS] (``pooling="cls"``), ID, one per feature key; each plus a learned
    type embedding. Missing keys and unknown IDs are masked out of the attention (key
    padding); an item with neither content nor a trained ID attends to its learned missing
    embeddings."""

    def __init__(self, features, n_users, n_items, dim, layers, heads, ff_dim, dropout, pooling, trained, id_dropout):
        super().__init__()
        self.content = ModalityProjector(features, dim)
        self.user = init_embedding(n_users, dim)
        self.id = init_embedding(n_items, dim, 0.01)
        # an item without a training interaction has an ID embedding that BPR only ever pushed
        # down (as a negative): its collaborative "modality" is missing, and masked like one
        self.register_buffer("trained", torch.as_tensor(trained), persistent=False)
        self.id_dropout = id_dropout
        n_tokens = 1 + len(self.content.keys) + (pooling == "cls")
        self.token_type = nn.Parameter(torch.empty(n_tokens, dim))
        nn.init.normal_(self.token_type, std=0.02)
        self.cls = nn.Parameter(torch.zeros(dim)) if pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        for block in self.encoder.layers:  # the same dropout, with a mask that costs a quarter of the draws
            block.dropout, block.dropout1, block.dropout2 = (FastDropout(dropout) for _ in range(3))

    def tokens(self, i=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (n, T, dim), padding mask (n, T): True = absent, left out of attention)."""
        emb, present = self.content(i)
        ids = self.id.weight if i is None else self.id(i)
        known = self.trained if i is None else self.trained[i]
        if self.training and self.id_dropout:
            known = known & (torch.rand(known.shape, device=known.device) >= self.id_dropout)
        present = present | ~(present.any(0) | known)  # nothing known: the learned missing embeddings
        x = [ids.unsqueeze(1), emb.transpose(0, 1)]
        pad = [~known.unsqueeze(1), ~present.T]
        if self.cls is not None:
            x.insert(0, self.cls.expand(len(ids), 1, -1))
            pad.insert(0, torch.zeros_like(pad[0]))
        return torch.cat(x, 1) + self.token_type, torch.cat(pad, 1)

    def encode(self, i=None) -> torch.Tensor:
        """The item vectors of ``i`` (without repeats; None = every item)."""
        x, pad = self.tokens(i)
        h = self.encoder(x, src_key_padding_mask=pad)
        if self.cls is not None:
            return h[:, 0]
        h = h.masked_fill(pad.unsqueeze(-1), 0.0)  # padded outputs are undefined, never averaged in
        return h.sum(1) / (~pad).sum(1, keepdim=True)

    def items(self, i):
        if i is None:
            return self.encode(), None
        once, inverse = torch.unique(i, return_inverse=True)  # a batch repeats items: encode each once
        return self.encode(once)[inverse], None

    def views(self, i) -> tuple[torch.Tensor, torch.Tensor]:
        """The ID embedding and each key's projection (1 + n_keys, n, dim), and their mask."""
        emb, present = self.content(i)
        ids_present = torch.ones_like(present[:1])
        return torch.cat([self.id(i).unsqueeze(0), emb]), torch.cat([ids_present, present])


class TransformerFusion(ContentRecommender):
    """Transformer fusion: each modality feature is projected into the shared
    ``embedding_dim`` space (with a learned vector for a missing row) and a small Transformer
    encoder (Vaswani et al., NeurIPS 2017) in its pre-norm form (layer norm before
    self-attention and feed-forward, final layer norm; Xiong et al., "On Layer Normalization
    in the Transformer Architecture", ICML 2020) runs over the item's tokens [CLS], ID,
    modality 1..K, each with a learned modality-type embedding; missing modalities are
    masked out of attention (key padding). The item vector is the [CLS] output (as BERT,
    Devlin et al., NAACL 2019) or the mean over the present tokens (``pooling``); score =
    dot product with a user embedding, BPR.

    The ID token counts as the collaborative modality: it is masked for items without a
    training interaction (their ID embedding was only ever a BPR negative) and, during
    training, for a random ``id_dropout`` share of the batch's items, so that the encoder
    learns to place an item from its content alone, as DropoutNet does (Volkovs, Yu &
    Poutanen, NeurIPS 2017; 0.5 as there).

    Projection alignment "before fusion", as in ALBEF (Li et al., "Align before Fuse", NeurIPS
    2021): symmetric InfoNCE (CLIP, Radford et al., ICML 2021) between each modality's
    projection and the item's collaborative (ID) embedding, and between modalities, on the
    batch's positive items with in-batch negatives, weighted by ``align_weight``. Deviations
    from ALBEF: one token per modality (pre-extracted features, not patch/word sequences), no
    momentum encoder or queue, the ID embedding as one more view, and training by BPR on
    interactions rather than image-text pre-training. Cross-modal attention over modality
    tokens follows the Multimodal Transformer (Tsai et al., ACL 2019).

    Defaults are the benchmark's: 64-d, 2 layers, 2 heads, feed-forward 4 x 64 (Vaswani's
    ratio), dropout 0.1, GELU, id_dropout 0.5, align_weight 0.1, temperature 0.07 (CLIP's initial value),
    Adam lr 1e-3, batch 2048, features z-scored per column and kept fixed (``features``,
    ``finetune_features``). Uses any non-empty subset of text/image/audio/video.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "dropped (masked out of the attention: key padding)"

    paper = "Vaswani et al., NeurIPS 2017; Xiong et al., ICML 2020 (pre-norm); Li et al., NeurIPS 2021 (ALBEF)"
    lr = Param(1e-3, gt=0.0, log=True, space=(3e-4, 1e-3, 3e-3), help="learning rate of the optimiser")
    reg = Param(1e-4, ge=0.0, space=(1e-5, 1e-4, 1e-3), help="L2 weight on the batch's user and ID embeddings")
    embedding_dim = Param(64, ge=1, help="size of the user, item and token vectors")
    layers = Param(2, ge=1, space=(1, 2, 3), help="Transformer encoder layers")
    heads = Param(2, ge=1, help="attention heads (must divide embedding_dim)")
    ff_dim = Param(256, ge=1, help="hidden units of each layer's feed-forward block")
    dropout = Param(0.1, ge=0.0, lt=1.0, help="dropout in the Transformer layers")
    pooling = Param("cls", choices=("cls", "mean"), help="item vector: the [CLS] output or the mean of present tokens")
    id_dropout = Param(0.5, ge=0.0, lt=1.0, space=(0.25, 0.5, 0.75),
                       help="share of training items whose ID token is masked (cold-start robustness)")
    align_weight = Param(0.1, ge=0.0, space=(0.01, 0.1, 1.0), help="weight of the projection alignment (0: none)")
    temperature = Param(0.07, gt=0.0, space=(0.035, 0.07, 0.14), help="temperature of the InfoNCE alignment")

    def build_module(self, data, features):
        if self.embedding_dim % self.heads:
            raise ConfigError(f"embedding_dim {self.embedding_dim} is not divisible by heads {self.heads}",
                              where=f"model {type(self).__name__}")
        trained = np.bincount(data.item, minlength=data.n_items) > 0
        return _TransformerFusion(features, data.n_users, data.n_items, self.embedding_dim, self.layers, self.heads,
                                  self.ff_dim, self.dropout, self.pooling, trained, self.id_dropout)

    def loss(self, batch):
        loss = super().loss(batch)
        if self.align_weight:
            z, present = self.module_.views(torch.unique(batch[1]))
            loss = loss + self.align_weight * view_alignment(z, present, "contrastive", self.temperature)
        return loss
