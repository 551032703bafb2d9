"""RecBole 1.2.1 as a peer: BPR, LightGCN and Pop built by RecBole from our split (written as
its benchmark files ``split.{train,valid,test}.inter``, our indices as tokens), trained by
RecBole's own trainer one epoch at a time (``Trainer._train_epoch``: its data loader, its
negative sampler, its loss, its optimiser) and scored by the model's own ``full_sort_predict``,
mapped back to our user and item order. The compatibility shims run only inside
:func:`~mmbench.parity.recbole_compat.recbole_env`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import ConfigError, DataError
from ..recbole_compat import import_recbole, recbole_env
from . import Mapping

SAMPLING = "negatives: one uniform item per training pair, the user's training items excluded, redrawn each epoch (both)"


def _bpr(p: dict) -> Mapping:
    if p["reg"]:
        raise ConfigError(f"RecBole's BPR has no L2 term, but reg={p['reg']}", where="parity bpr/recbole",
                          hint="run with reg=0 (bpr's default)")
    return Mapping("BPR", {"embedding_size": p["embedding_dim"], "learning_rate": p["lr"],
                           "train_batch_size": p["batch_size"]},
                   ["loss: mean BPR loss over the batch, no L2 (ours: reg = 0); Adam (both)", SAMPLING,
                    "init: xavier-normal user and item tables (both)"])


def _lightgcn(p: dict) -> Mapping:
    return Mapping("LightGCN", {"embedding_size": p["embedding_dim"], "n_layers": p["n_layers"],
                                "reg_weight": p["reg"], "require_pow": True, "learning_rate": p["lr"],
                                "train_batch_size": p["batch_size"]},
                   ["reg: RecBole's EmbLoss with require_pow = True is sum |e|^2 / (2 batch) over the batch's layer-0 "
                    "embeddings, ours 1/2 reg sum |e|^2 / batch: reg_weight = reg (RecBole's default require_pow = "
                    "False penalises unsquared norms, another convention)", SAMPLING,
                    "graph: D^-1/2 A D^-1/2 over the distinct training pairs, layers 0..K averaged (both)",
                    "init: xavier-uniform; RecBole draws the user and the item tables separately (bound "
                    "sqrt(6 / (n + d)) per table), ours one (users + items) table (bound sqrt(6 / (n_users + n_items "
                    "+ d)), smaller)"])


def _pop(p: dict) -> Mapping:
    return Mapping("Pop", {}, ["score: training interactions per item (RecBole divides by the largest count: the "
                               "same order); one pass over the training data"])


MODELS = {"bpr": _bpr, "lightgcn": _lightgcn, "pop": _pop}


def version() -> str:
    from importlib.metadata import version as v

    return v("recbole")


def write_split(folder: Path, name: str, dataset, test_users: np.ndarray | None = None) -> None:
    """Our split as RecBole's benchmark files ``<name>.<part>.inter`` (tokens: our indices);
    with ``test_users``, only their test rows (a sample to evaluate)."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        u, i, _ = dataset.pairs(part)
        if part == "test" and test_users is not None:
            keep = np.isin(u, test_users)
            u, i = u[keep], i[keep]
        lines = ["user_id:token\titem_id:token"] + [f"{a}\t{b}" for a, b in zip(u.tolist(), i.tolist())]
        (folder / f"{name}.{part}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")


def config(workdir: Path, mapping: Mapping, seed: int, device: str) -> dict:
    cuda = device.startswith("cuda")
    neg = ({"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0}
           if mapping.peer_model != "Pop" else None)  # Pop counts every row it is given: no negatives
    return {"data_path": str(workdir / "data"), "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id"]}, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
            "eval_args": {"mode": "full", "order": "RO", "group_by": "user", "split": {"RS": [0.8, 0.1, 0.1]}},
            "seed": seed, "reproducibility": True, "device": "cuda" if cuda else "cpu", "use_gpu": cuda,
            "gpu_id": device.partition(":")[2] or "0", "show_progress": False, "train_neg_sample_args": neg,
            "checkpoint_dir": str(workdir / "saved"), "save_dataset": False, "save_dataloaders": False,
            "log_wandb": False, "state": "ERROR", "worker": 0, **mapping.settings}


class RecBoleModel:
    """A RecBole model and its trainer on our split (a :class:`~mmbench.parity.adapters.PeerModel`)."""

    def __init__(self, dataset, mapping: Mapping, seed: int, workdir: Path, device: str = "cpu"):
        self.workdir = Path(workdir)
        write_split(self.workdir / "data" / "split", "split", dataset)
        with recbole_env(self.workdir):
            rb = import_recbole()
            cfg = rb["Config"](model=mapping.peer_model, dataset="split",
                               config_dict=config(self.workdir, mapping, seed, device))
            rb["init_seed"](seed, True)
            data = rb["create_dataset"](cfg)
            self.train_data, _, _ = rb["data_preparation"](cfg, data)
            rb["init_seed"](seed, True)  # as RecBole's run_recbole: seeded again before the model is built
            self.model = rb["get_model"](mapping.peer_model)(cfg, self.train_data._dataset).to(cfg["device"])
            self.trainer = rb["get_trainer"](cfg["MODEL_TYPE"], mapping.peer_model)(cfg, self.model)
        self.interaction, self.device = rb["Interaction"], cfg["device"]
        self.user_field = self.model.USER_ID
        self.rb_user = _our_to_theirs(data.field2id_token["user_id"], dataset.n_users)
        self.rb_item = torch.as_tensor(_our_to_theirs(data.field2id_token["item_id"], dataset.n_items))

    def train(self, epoch_end, epochs: int) -> None:
        for epoch in range(1, epochs + 1):
            with recbole_env(self.workdir):
                total = self.trainer._train_epoch(self.train_data, epoch - 1, show_progress=False)
            loss = sum(total) if isinstance(total, tuple) else total
            if epoch_end(epoch, None if loss is None else float(loss) / max(len(self.train_data), 1)):
                return

    def score(self, users) -> torch.Tensor:
        u = torch.as_tensor(self.rb_user[np.asarray(torch.as_tensor(users).cpu())], device=self.device)
        self.model.eval()
        with torch.no_grad():
            s = self.model.full_sort_predict(self.interaction({self.user_field: u}))
        return s.view(len(u), -1)[:, self.rb_item.to(s.device)]

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
        for name in ("restore_user_e", "restore_item_e"):  # full-sort caches of the graph models: stale now
            if hasattr(self.model, name):
                setattr(self.model, name, None)


def _our_to_theirs(tokens, n: int) -> np.ndarray:
    """Our index -> RecBole's id, from RecBole's id -> token table (id 0 is its padding)."""
    if len(tokens) - 1 != n:
        raise DataError(f"RecBole read {len(tokens) - 1} ids where the split has {n}", where="parity/recbole",
                        hint="every user and item must occur in the split")
    out = np.zeros(n, dtype=np.int64)
    out[np.asarray([int(t) for t in tokens[1:]], dtype=np.int64)] = np.arange(1, len(tokens))
    return out


def build(dataset, features, mapping: Mapping, seed: int, workdir: Path, device: str = "cpu") -> RecBoleModel:
    return RecBoleModel(dataset, mapping, seed, workdir, device)
