"""End-to-end early fusion: a small CNN over item images and a GRU over item text, trained
jointly with the recommender from raw inputs (``image_raw/*`` pixels, ``text_tokens/*`` ids)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mmbench.errors import DataError
from mmbench.models import ContentRecommender, Param, UserDotItem, init_embedding, select_features

from .fusion import mlp

RAW_MODALITIES = ("image_raw", "text_tokens")


def pixel_tensor(key: str, values: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """uint8 images (n, 3, S, S) from rows of S*S*3 pixel values (HWC); missing rows zero."""
    side = math.isqrt(values.shape[1] // 3)
    if 3 * side * side != values.shape[1]:
        raise DataError(f"{values.shape[1]} columns are not the pixels of a square RGB image (3 x S x S)",
                        where=f"feature {key}")
    x = np.where(mask[:, None], values, 0.0)
    if x.min() < 0 or x.max() > 255 or not np.array_equal(x, np.round(x)):
        raise DataError("pixel values must be whole numbers in 0..255", where=f"feature {key}",
                        hint="use the pixels-32 encoder (image_raw/pixels-32)")
    return torch.as_tensor(x.astype(np.uint8).reshape(len(x), side, side, 3).transpose(0, 3, 1, 2).copy())


def token_tensor(key: str, values: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, int]:
    """Token ids renumbered 1..V over the vocabulary the present rows use (0 stays padding),
    and V; missing rows are all padding."""
    x = np.where(mask[:, None], values, 0.0)
    if x.min() < 0 or not np.array_equal(x, np.round(x)):
        raise DataError("token ids must be whole numbers >= 0 (0 = padding)", where=f"feature {key}",
                        hint="use the minilm-32 encoder (text_tokens/minilm-32)")
    ids = x.astype(np.int64)
    vocab = np.unique(ids[ids > 0])
    compact = np.where(ids > 0, np.searchsorted(vocab, ids) + 1, 0)
    return torch.as_tensor(compact), len(vocab)


class ImageCNN(nn.Module):
    """Three 3x3 convolution blocks (``c``, 2c, 4c channels; ReLU; 2x2 max-pooling after the
    first two), average-pooled to a 4 x 4 grid and flattened (the layout survives, as in the
    fully connected top of CNN-F/AlexNet), a linear map to ``out``. Input: uint8 (b, 3, S, S)."""

    def __init__(self, c: int, out: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * c, out))

    def forward(self, x):
        return self.net(x.float() / 127.5 - 1.0)


class TextGRU(nn.Module):
    """Word embeddings, a one-layer GRU over the tokens (padding skipped), its last hidden
    state mapped linearly to ``out``. Input: long (b, L), 0 = padding at the end."""

    def __init__(self, vocab: int, word_dim: int, hidden: int, out: int):
        super().__init__()
        self.embed = nn.Embedding(vocab + 1, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, out)

    #: rows are encoded in this many groups of similar length (each padded to its own longest)
    length_groups = 4

    def forward(self, ids):
        # Rows sorted by length run through the GRU in a few groups, each padded to its own
        # longest text, and each row's output at its last token is taken: the state a packed
        # sequence ends in (padding comes after the tokens, so it never reaches that state).
        # A packed sequence's backward makes a zero-filled copy of the whole batch per time
        # step; this does not (the text tower runs ~2x faster on ml-100k's titles).
        lengths = (ids != 0).sum(1).clamp_min(1)
        order = torch.argsort(lengths, stable=True)
        h = torch.empty(len(ids), self.gru.hidden_size, device=ids.device)
        for rows in order.tensor_split(min(self.length_groups, len(ids))):
            if len(rows) == 0:
                continue
            n = lengths[rows]
            out, _ = self.gru(self.embed(ids[rows, :int(n.max())]))
            h = h.index_copy(0, rows, out[torch.arange(len(rows), device=ids.device), n - 1])
        return self.out(h)


class _EndToEnd(UserDotItem, nn.Module):
    """Per key, its raw inputs (buffers ``x{j}``, present mask ``m{j}``, the layout
    ``drop_modality`` reads) and its encoder; a missing row gets the key's learned vector.
    The encoder outputs and the presence flags are concatenated and a dense head fuses them."""

    def __init__(self, features, n_users, n_items, dim, channels, word_dim, text_hidden, hidden, dropout, use_id):
        super().__init__()
        self.keys = sorted(features)
        encoders = []
        for j, k in enumerate(self.keys):
            f = features[k]
            mask = f.mask.astype(bool)
            if f.modality == "image_raw":
                x = pixel_tensor(k, f.values, mask)
                encoders.append(ImageCNN(channels, dim))
            else:
                x, vocab = token_tensor(k, f.values, mask)
                encoders.append(TextGRU(vocab, word_dim, text_hidden, dim))
            self.register_buffer(f"x{j}", x, persistent=False)
            self.register_buffer(f"m{j}", torch.as_tensor(mask), persistent=False)
        self.encoders = nn.ModuleList(encoders)
        self.missing = nn.Parameter(torch.empty(len(self.keys), dim))
        nn.init.normal_(self.missing, std=0.01)
        self.head = mlp(len(self.keys) * (dim + 1), hidden, dim, dropout)
        self.user = init_embedding(n_users, dim)
        self.id = init_embedding(n_items, dim, 0.01) if use_id else None

    def content(self, i=None) -> torch.Tensor:
        """The fused content vector of each item (``i`` without repeats)."""
        parts, flags = [], []
        for j, encoder in enumerate(self.encoders):
            x, m = getattr(self, f"x{j}"), getattr(self, f"m{j}")
            if i is not None:
                x, m = x[i], m[i]
            e = self.missing[j].repeat(len(m), 1)
            if bool(m.any()):
                e[m] = encoder(x[m])  # the encoder never sees a missing row
            parts.append(e)
            flags.append(m.to(e.dtype).unsqueeze(1))
        return self.head(torch.cat(parts + flags, 1))

    def items(self, i):
        if i is None:
            return self.with_id(self.content(), None), None
        once, inverse = torch.unique(i, return_inverse=True)  # each item's image and text encoded once
        return self.with_id(self.content(once)[inverse], i), None


class E2EEarlyFusion(ContentRecommender):
    """End-to-end early fusion from raw inputs: a small CNN over each item's image
    (``image_raw/*``, e.g. 32 x 32 pixels) and a GRU over its text tokens (``text_tokens/*``),
    trained jointly with the recommender; their outputs and one presence flag per key are
    concatenated and a dense head (one ReLU layer) maps them to the item's content vector,
    to which its ID embedding is added; score = dot product with a user embedding, BPR.
    A missing image or text is a learned vector of its key (the encoder never sees it).

    Follows the classic end-to-end pipelines: a CNN trained on item images with the ranking
    loss as in DVBPR (Kang, Fang, Wang & McAuley, "Visually-Aware Fashion Recommendation
    and Design with Generative Image Models", ICDM 2017) and a GRU over item text trained
    with the recommender as in Bansal, Belanger & McCallum, "Ask the GRU" (RecSys 2016),
    joined by early fusion (concatenation then a dense layer; Baltrušaitis et al., TPAMI
    2019). Deviations: a 3-block CNN on 32 x 32 images instead of CNN-F on 224 x 224, a
    one-layer unidirectional GRU without the multi-task tag loss, Adam on mini-batches.
    Small on purpose (CPU): 16/32/64 channels, 32-d words, 64 GRU units, 64-d vectors.

    Inputs: the encoders ``image_raw/pixels-32`` (the card's ``[media]`` images) and
    ``text_tokens/minilm-32`` (its ``[text]``) of ``mmbench.features.encoders.raw``; either
    alone is enough (text only on ml-100k, which has no images). Its encoders read the raw
    inputs as stored and learn from them: there is no feature preprocessing or fine-tuning
    to choose (no ``features``, ``pca_dim`` or ``finetune_features``).
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "learned token (a per-key missing vector; the encoder never sees it)"

    paper = "Kang et al., ICDM 2017 (DVBPR); Bansal et al., RecSys 2016 (Ask the GRU)"
    requires_any = RAW_MODALITIES
    lr = Param(1e-3, gt=0.0, log=True, space=(3e-4, 1e-3, 3e-3), help="learning rate of the optimiser")
    reg = Param(1e-4, ge=0.0, space=(1e-5, 1e-4, 1e-3), help="L2 weight on the batch's user and ID embeddings")
    embedding_dim = Param(64, ge=1, help="size of the user and item vectors and of each encoder's output")
    cnn_channels = Param(16, ge=1, help="channels of the CNN's first block (then 2x and 4x)")
    word_dim = Param(32, ge=1, help="size of the word embeddings")
    text_hidden = Param(64, ge=1, help="units of the GRU")
    hidden_dim = Param(128, ge=1, help="units of the fusion head's hidden layer")
    dropout = Param(0.1, ge=0.0, lt=1.0, space=(0.0, 0.1, 0.2), help="dropout in the fusion head")
    use_id = Param(True, help="add the item's ID embedding to its fused content")
    features = pca_dim = finetune_features = None  # raw inputs: not parameters of this model

    def content_features(self, data, features):
        """The raw inputs as stored (pixels, token ids): the encoders read them unchanged."""
        chosen = select_features(type(self), features, n_items=data.n_items)
        self.feature_keys_ = sorted(chosen)
        return chosen

    def build_module(self, data, features):
        return _EndToEnd(features, data.n_users, data.n_items, self.embedding_dim, self.cnn_channels, self.word_dim,
                         self.text_hidden, self.hidden_dim, self.dropout, self.use_id)
