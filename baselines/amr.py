"""AMR: VBPR trained against worst-case (FGSM-style) perturbations of the content features."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mmbench.models import (CONTENT_MODALITIES, CachedEmbeddings, ContentFeatures, ModalityProjector, Param,
                            TorchRecommender, bpr_loss)


class _VisualMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, features: dict):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)
        self.content = ModalityProjector(features, dim)
        self.widths = [features[k].dim for k in self.content.keys]

    def item_repr(self, items: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        """q_i + E c_i with c_i the item's content (all feature keys side by side), plus an
        optional perturbation ``delta`` (b, sum of widths) added to the (preprocessed) features.
        A key missing for an item contributes its learned missing embedding instead."""
        proj = self.content
        out = self.item(items)
        off = 0
        for j, layer in enumerate(proj.proj):
            x, m = proj.raw(j)
            x, m = x[items], m[items]
            if delta is not None:
                x = x + delta[:, off:off + self.widths[j]]
            off += self.widths[j]
            e = layer(x)
            out = out + torch.where(m.unsqueeze(-1), e, proj.missing[j].expand_as(e))
        return out


class AMR(ContentFeatures, CachedEmbeddings, TorchRecommender, epochs=500, patience=20, features="maxabs"):
    """AMR (Tang, Du, He, Yuan, Tian & Chua, "Adversarial Training Towards Robust Multimedia
    Recommender System", IEEE TKDE 2019).

    The paper's visually-aware MF: score(u, i) = p_u . (q_i + E c_i), one user embedding
    (c_i: the item's content features, all keys side by side). Each step also builds the
    adversarial perturbation of the content of the batch's items, Delta = eps * G / |G|_2 per
    item, G the gradient of the BPR loss with respect to the features (fast gradient method,
    treated as a constant), and minimises L_BPR(clean) + adv_weight * L_BPR(c + Delta).

    Defaults checked against the authors' released code (github.com/duxy-me/AMR: ``run.sh``,
    ``src/model/VBPR.py``, ``src/dataset/Dataset.py``): 64-d, eps 0.1, adv_weight (lambda) 1,
    L2 0.1 on the batch's user embeddings and 1e-3 on its item representations q_i + E c_i
    (clean), none on E (``regs=[1e-1,1e-3,0]``; there the BPR and L2 terms are both sums over
    the batch, here both means: the same ratio), N(0, 0.01) init (truncated there), and the
    features divided by their largest absolute value (``features="maxabs"``), so eps is in
    those units. Deviations: Adam lr 1e-3 and batch 2048 instead of per-block Adagrad (lr
    0.01, 1e-4, 1e-3 for users, items and E) and 512; adversarial training from the first
    epoch instead of from a pretrained VBPR; E has a bias and PyTorch's default
    initialisation; Delta is a constant as the paper says (the released code calls
    ``tf.stop_gradient`` without using its result, so its gradients also flow through Delta).

    Modalities: at least one content feature of any modality (``requires_any``). A missing row (mask
    False) contributes a learned missing embedding and is never perturbed.
    """

    # how a missing feature row is treated (mmbench.robustness)
    missing_rows = "learned token (a per-key missing vector, never perturbed)"

    paper = "Tang et al., IEEE TKDE 2019"
    requires_any = CONTENT_MODALITIES
    embedding_dim = Param(64, ge=1, help="size of the user and item representations")
    eps = Param(0.1, ge=0.0, help="norm of the adversarial perturbation (in units of the preprocessed features)")
    adv_weight = Param(1.0, ge=0.0, space=(0.3, 1.0, 3.0),
                       help="lambda: weight of the BPR loss on perturbed content (0: VBPR-like)")
    reg_user = Param(0.1, ge=0.0, space=(0.01, 0.1, 1.0), help="L2 on the batch's user embeddings")
    reg_item = Param(1e-3, ge=0.0, space=(1e-4, 1e-3, 1e-2), help="L2 on the batch's item representations")

    def build(self, data, features):
        return _VisualMF(data.n_users, data.n_items, self.embedding_dim, self.content_features(data, features))

    def _bpr(self, u, i, j, delta=None):
        """BPR loss of a batch; items are looked up once (unique) so a perturbation is per item."""
        m = self.module_
        items, inv = torch.unique(torch.cat([i, j]), return_inverse=True)
        reps = m.item_repr(items, delta)
        eu = m.user(u)
        ri, rj = reps[inv[:len(i)]], reps[inv[len(i):]]
        return bpr_loss((eu * ri).sum(1), (eu * rj).sum(1)), eu, ri, rj, items

    def _clean_and_delta(self, u, i, j):
        """The clean BPR terms and the adversarial perturbation of the batch's distinct items:
        the gradient is taken through a zero perturbation, so one forward pass serves both."""
        m = self.module_
        n = len(torch.unique(torch.cat([i, j])))
        zero = torch.zeros(n, sum(m.widths), device=u.device, requires_grad=True)
        with torch.enable_grad():
            out = self._bpr(u, i, j, zero)
            (grad,) = torch.autograd.grad(out[0], zero, retain_graph=True)
        return out, self.eps * F.normalize(grad.detach(), dim=1)

    def perturbation(self, u, i, j) -> tuple[torch.Tensor, torch.Tensor]:
        """(items, Delta): the distinct items of a batch and their adversarial perturbation
        (one row per item; norm ``eps`` where the item has content, zero where it has none)."""
        (_, _, _, _, items), delta = self._clean_and_delta(u, i, j)
        return items, delta

    def loss(self, batch):
        u, i, j = batch
        if self.adv_weight:
            (loss, eu, ri, rj, _), delta = self._clean_and_delta(u, i, j)
            loss = loss + self.adv_weight * self._bpr(u, i, j, delta)[0]
        else:
            loss, eu, ri, rj, _ = self._bpr(u, i, j)
        reg = self.reg_user * eu.pow(2).sum(1).mean() + self.reg_item * (ri.pow(2).sum(1) + rj.pow(2).sum(1)).mean()
        return loss + reg

    def final_embeddings(self):
        m = self.module_
        return m.user.weight, m.item_repr(torch.arange(self.n_items_, device=m.user.weight.device))
