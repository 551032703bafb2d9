"""Cornac as a peer: BPR (LearnBPR, against our ``bpr-sgd``), VBPR, AMR and MostPop on our
split (``BaseMethod.from_splits`` over our indices as ids; content models get our feature
matrices, all keys side by side, as Cornac's item "image" modality), scored by the model's own
``score`` and mapped back to our user and item order.

Epoch by epoch with Cornac's own code: BPR and MostPop are refitted with ``max_iter = 1``
(Cornac keeps the factors between fits; SGD has no optimiser state to lose). VBPR and AMR
train inside one ``fit(n_epochs = epochs)`` (Adam's state lives there): the progress bar
Cornac opens for each epoch is replaced by a stand-in whose ``close`` (the end of an epoch)
reads the live parameters from Cornac's frame, stores them on the model as Cornac's own
epilogue does, and stops the loop when our early stopping says so. No Cornac code is changed.
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from ...errors import DataError
from . import Mapping

ADAM_SCALE = ("loss: Cornac sums the BPR loss and lambda/2 |x|^2 over the batch, ours averages them (L2 as sum |x|^2 / "
              "batch); Adam's steps do not depend on that overall scale, so lambda = 2 reg")
NEGATIVES = ("negatives: uniform, the user's training items excluded (Cornac draws among the items that occur in "
             "training, ours among all items)")
DRIVEN = ("epochs: Cornac's single fit(n_epochs = epochs) stopped by our early stopping; the parameters are read at "
          "the end of each epoch")


def _bpr(p: dict) -> Mapping:
    return Mapping("BPR", {"k": p["embedding_dim"], "learning_rate": p["lr"], "lambda_reg": p["reg"],
                           "use_bias": False},
                   ["update: LearnBPR SGD, one triple at a time, L2 on the three rows it touches: lambda_reg = reg "
                    "(both)", "item bias: Cornac's default has one; use_bias = False, as ours has none",
                    "sampling: Cornac draws |train| pairs with replacement each epoch and skips a triple whose "
                    "negative the user has seen; ours visits every pair once in a random order and redraws it",
                    "init: Cornac uniform in +-0.5/k; ours xavier-normal",
                    "epochs: one fit(max_iter = 1) per epoch, factors kept; a seed makes Cornac use one thread"])


def _vbpr(p: dict) -> Mapping:
    return Mapping("VBPR", {"k": p["embedding_dim"], "k2": p["content_dim"], "learning_rate": p["lr"],
                            "batch_size": p["batch_size"], "lambda_w": 2 * p["reg"], "lambda_b": 2 * p["reg"],
                            "lambda_e": 0.0},
                   [ADAM_SCALE + "; Cornac penalises the negative item's bias with lambda_b / 10, ours with reg",
                    "score: beta_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i (both); ours projects each "
                    "feature key with an affine map (a bias term Cornac's E lacks) and learns a vector for missing "
                    "rows (none here)", NEGATIVES,
                    "init: Cornac xavier-uniform (E and beta' too), item biases zero; ours xavier-normal ID factors, "
                    "torch's default for the projection", DRIVEN])


def _amr(p: dict) -> Mapping:
    return Mapping("AMR", {"k": p["embedding_dim"], "learning_rate": p["lr"], "batch_size": p["batch_size"],
                           "lambda_w": 2 * p["reg_item"], "lambda_adv": p["adv_weight"], "lambda_e": 0.0},
                   ["perturbation: ours Delta = eps G / |G| per item, G the gradient of the BPR loss with respect to "
                    "the content (the paper's fast gradient method, eps = %g); Cornac adds the raw gradient of the "
                    "log-likelihood (no eps, not normalised, the direction that lowers the loss): no setting maps one "
                    "to the other" % p["eps"],
                    ADAM_SCALE + "; Cornac penalises p_u, q_i, q_j with one lambda_w = 2 reg_item; ours reg_user = %g "
                    "on p_u (no counterpart) and reg_item on the whole item representation q_i + E c_i" % p["reg_user"],
                    "score: p_u . (q_i + E c_i) (both; ours E has a bias term)", NEGATIVES,
                    "init: Cornac xavier-uniform; ours N(0, 0.01) for p and q, torch's default for E", DRIVEN])


def _pop(p: dict) -> Mapping:
    return Mapping("MostPop", {}, ["score: training interactions per item (both); items without one get Cornac's "
                                   "lowest known score"])


MODELS = {"bpr-sgd": _bpr, "vbpr": _vbpr, "amr": _amr, "pop": _pop}
# Cornac's torch models: attribute -> the local of ``_fit_torch`` holding it, and the item
# tables its epilogue precomputes (attribute -> the two locals it multiplies), as it copies them
TORCH_LOCALS = {"VBPR": {"beta_item": "Bi", "gamma_user": "Gu", "gamma_item": "Gi", "theta_user": "Tu",
                         "emb_matrix": "E", "beta_prime": "Bp"},
                "AMR": {"gamma_user": "Gu", "gamma_item": "Gi", "emb_matrix": "E"}}
TORCH_PRODUCTS = {"VBPR": {"theta_item": ("F", "E"), "visual_bias": ("F", "Bp")}, "AMR": {"theta_item": ("F", "E")}}
STATE = {"BPR": ("u_factors", "i_factors", "i_biases"), "MostPop": ("item_pop",),
         **{k: (*TORCH_LOCALS[k], *TORCH_PRODUCTS[k]) for k in TORCH_LOCALS}}


def version() -> str:
    from importlib.metadata import version as v

    return v("cornac")


def content_matrix(features: dict, how: str) -> np.ndarray:
    """Every feature key side by side (sorted keys, as ours), each preprocessed as ``how``
    says (one of ``FEATURE_PREPROCESSING``, as our content models' ``features`` parameter:
    ``standard`` z-scored per column over present rows, ``raw`` the stored values, ...);
    missing rows are zero."""
    from ...models.content import standardize

    return np.concatenate([standardize(features[k].values, features[k].mask, how)
                           for k in sorted(features)], axis=1)


def _triples(dataset, part: str) -> list[tuple[str, str, float]]:
    u, i, _ = dataset.pairs(part)
    return [(str(a), str(b), 1.0) for a, b in zip(u.tolist(), i.tolist())]


def _index(id_map: dict, n: int, what: str) -> np.ndarray:
    """Our index -> Cornac's, from Cornac's id -> index map."""
    if len(id_map) != n:
        raise DataError(f"Cornac indexed {len(id_map)} {what} where the split has {n}", where="parity/cornac",
                        hint="every user and item must occur in the split")
    out = np.empty(n, dtype=np.int64)
    for raw, idx in id_map.items():
        out[int(raw)] = idx
    return out


class _EpochEnd:
    """Stands in for ``tqdm`` in a Cornac torch model: one bar per epoch; ``close`` is the end
    of an epoch, with the live parameters in the caller's frame."""

    def __init__(self, on_close):
        self.on_close = on_close

    def __call__(self, *args, **kwargs):
        return self

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        self.on_close(sys._getframe(1).f_locals)


class _Stop(Exception):
    pass


class CornacModel:
    """A Cornac model on our split (a :class:`~mmbench.parity.adapters.PeerModel`)."""

    def __init__(self, dataset, features: dict, mapping: Mapping, seed: int, device: str = "cpu"):
        import cornac
        from cornac.eval_methods import BaseMethod

        image = None
        if mapping.features is not None:
            image = cornac.data.ImageModality(features=content_matrix(features, mapping.features),
                                              ids=[str(i) for i in range(dataset.n_items)])
        bm = BaseMethod.from_splits(train_data=_triples(dataset, "train"), test_data=_triples(dataset, "test"),
                                    val_data=_triples(dataset, "valid"), exclude_unknowns=False, seed=seed,
                                    verbose=False, item_image=image)
        self.train_set, self.val_set = bm.train_set, bm.val_set
        self.cn_user = _index(self.train_set.uid_map, dataset.n_users, "users")
        self.cn_item = _index(self.train_set.iid_map, dataset.n_items, "items")
        self.mapping, self.seed, self.device = mapping, seed, device
        self.cls = getattr(cornac.models, mapping.peer_model)
        self.model = None

    def train(self, epoch_end, epochs: int) -> None:
        name, settings = self.mapping.peer_model, self.mapping.settings
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # "already fitted", "finished"
            warnings.simplefilter("ignore")
            if name in TORCH_LOCALS:
                self.model = self.cls(n_epochs=epochs, seed=self.seed, use_gpu=self.device.startswith("cuda"),
                                      verbose=False, **settings)
                self._train_torch(epoch_end)
                return
            self.model = (self.cls(max_iter=1, seed=self.seed, num_threads=1, verbose=False, **settings)
                          if name == "BPR" else self.cls(**settings))
            for epoch in range(1, epochs + 1):
                self.model.fit(self.train_set, self.val_set)
                if epoch_end(epoch, None):
                    return

    def _train_torch(self, epoch_end) -> None:
        model, name = self.model, self.mapping.peer_model

        def on_close(frame: dict) -> None:
            for attr, local in TORCH_LOCALS[name].items():
                setattr(model, attr, frame[local].data.cpu().numpy().copy())
            for attr, (a, b) in TORCH_PRODUCTS[name].items():  # e.g. theta_item = F.mm(E), as Cornac's epilogue
                out = frame[a].mm(frame[b]).data.cpu().numpy()
                setattr(model, attr, out.ravel() if out.shape[1] == 1 else out)
            if epoch_end(frame["epoch"], frame["sum_loss"] / max(frame["count"], 1)):
                raise _Stop

        with mock.patch.object(sys.modules[type(model).__module__], "tqdm", _EpochEnd(on_close)):
            try:
                model.fit(self.train_set, self.val_set)
            except _Stop:
                pass

    def score(self, users) -> torch.Tensor:
        rows = []
        for u in self.cn_user[np.asarray(torch.as_tensor(users).cpu())].tolist():
            s = np.asarray(self.model.score(u), dtype=np.float64)
            if len(s) < self.model.total_items:  # items unknown to training: Cornac's lowest known score
                s = np.concatenate([s, np.full(self.model.total_items - len(s), s.min())])
            rows.append(s)
        return torch.from_numpy(np.stack(rows)[:, self.cn_item])

    def state_dict(self) -> dict:
        return {a: getattr(self.model, a) for a in STATE[self.mapping.peer_model]}

    def load_state_dict(self, state: dict) -> None:
        for a, v in state.items():
            setattr(self.model, a, v)


def build(dataset, features, mapping: Mapping, seed: int, workdir: Path, device: str = "cpu") -> CornacModel:
    return CornacModel(dataset, features, mapping, seed, device)
