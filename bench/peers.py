"""The evaluators compared side by side, all ranking the same exact scores on the same split.

Each ``run(...)`` returns ``{metric: mean}`` (and per-user values where the peer gives
them); the benchmark checks agreement before it times anything. Metric names are ours
(``ndcg@10``...). Shared definitions: recall, ndcg, precision, hit, mrr @k. MAP@k differs:
RecBole and MMRec divide by min(|rel|, k), mmbench (like ranx) by |rel|; the benchmark
converts ours and checks that too. Cornac's MRR and MAP are over the full ranking (no @k),
so only its @k metrics are compared.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmbench.evaluate import metrics as M

SHARED = ("recall", "ndcg", "precision", "hit", "mrr")


def names_for(ks=(10, 20)) -> list[str]:
    return [f"{m}@{k}" for k in ks for m in (*SHARED, "map")]


# -- bare bound and straightforward baselines (torch) ---------------------------------------------
def bare_bound(score_fn, users: np.ndarray, k: int, batch_users: int) -> float:
    """User-batched scoring + torch.topk over the same sizes: what any full ranking must do."""
    ut = torch.as_tensor(users)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(ut), batch_users):
            torch.topk(score_fn(ut[s:s + batch_users]), k, dim=1)
    return time.perf_counter() - t0


def vectorised(score_fn, split, users, names, batch_users: int) -> dict:
    """A straightforward vectorised torch pass (mmbench's first version): per batch, NaN check
    over the whole block, mask, topk, a dense (batch x n_items) bool target matrix, gather."""
    target, exclude = split.csr("test"), split.csr("train", "valid")
    t_ptr, t_idx = torch.as_tensor(target[0]), torch.as_tensor(target[1])
    e_ptr, e_idx = torch.as_tensor(exclude[0]), torch.as_tensor(exclude[1])
    maxk = max(M.parse_metric(n)[1] for n in names)
    out = {n: [] for n in names}
    ut = torch.as_tensor(users)

    def expand(ptr, idx, rows):
        starts, counts = ptr[rows], ptr[rows + 1] - ptr[rows]
        r = torch.repeat_interleave(torch.arange(len(rows)), counts)
        first = torch.cumsum(counts, 0) - counts
        offs = torch.arange(len(r)) - torch.repeat_interleave(first, counts)
        return r, idx[torch.repeat_interleave(starts, counts) + offs], counts

    with torch.no_grad():
        for s in range(0, len(ut), batch_users):
            ub = ut[s:s + batch_users]
            scores = score_fn(ub).float()
            if torch.isnan(scores).any():
                raise RuntimeError("NaN")
            r, c, _ = expand(e_ptr, e_idx, ub)
            scores[r, c] = -torch.inf
            top = torch.topk(scores, maxk, dim=1).indices
            r, c, counts = expand(t_ptr, t_idx, ub)
            tgt = torch.zeros(scores.shape, dtype=torch.bool)
            tgt[r, c] = True
            for n, v in M.compute(names, tgt.gather(1, top).double(), counts.double()).items():
                out[n].append(v)
    return {n: torch.cat(v).numpy() for n, v in out.items()}


def mmrec_style(score_fn, split, users, names, batch_users: int) -> dict:
    """The MMRec pattern: batched scores, masking (-1e10) and topk in torch; then the hit
    matrix built in a Python loop over users (``[i in pos for i in top]``) and the metrics in
    numpy. (MAP in MMRec's convention: divided by min(|rel|, k).)"""
    target, exclude = split.csr("test"), split.csr("train", "valid")
    maxk = max(M.parse_metric(n)[1] for n in names)
    ut = torch.as_tensor(users)
    tops = []
    with torch.no_grad():
        for s in range(0, len(ut), batch_users):
            ub = ut[s:s + batch_users]
            scores = score_fn(ub).float()
            rows, cols = [], []
            for r, u in enumerate(ub.tolist()):
                items = exclude[1][exclude[0][u]:exclude[0][u + 1]]
                rows.append(np.full(len(items), r))
                cols.append(items)
            scores[torch.as_tensor(np.concatenate(rows)), torch.as_tensor(np.concatenate(cols))] = -1e10
            tops.append(torch.topk(scores, maxk, dim=-1).indices)
    top = torch.cat(tops).numpy()
    pos_items = [target[1][target[0][u]:target[0][u + 1]] for u in users]
    bool_rec = np.array([[i in m for i in row] for m, row in zip(pos_items, top)], dtype=float)
    pos_len = np.array([len(m) for m in pos_items], dtype=float)
    out = {}
    ranks = np.arange(1, maxk + 1)
    cum = np.cumsum(bool_rec, axis=1)
    for n in names:
        base, k = M.parse_metric(n)
        h = bool_rec[:, :k]
        if base == "recall":
            out[n] = cum[:, k - 1] / pos_len
        elif base == "precision":
            out[n] = cum[:, k - 1] / k
        elif base == "hit":
            out[n] = (cum[:, k - 1] > 0).astype(float)
        elif base == "mrr":
            first = np.where(h.any(1), h.argmax(1) + 1, np.inf)
            out[n] = 1.0 / first
        elif base == "ndcg":
            disc = 1.0 / np.log2(ranks[:k] + 1)
            idcg = np.cumsum(disc)[np.minimum(pos_len, k).astype(int) - 1]
            out[n] = (h * disc).sum(1) / idcg
        elif base == "map":
            prec = cum[:, :k] / ranks[:k]
            out[n] = (prec * h).sum(1) / np.minimum(pos_len, k)
    return out


# -- RecBole --------------------------------------------------------------------------------------
class RecBolePeer:
    """RecBole 1.2.1's full-sort evaluator (``Trainer.evaluate``) fed with our scores through a
    model whose ``full_sort_predict`` returns them (ids mapped to RecBole's)."""

    def __init__(self, split, scores, *, test_users=None, eval_batch_size=4096, ks=(10, 20), workdir=None,
                 train_batch_size=2048, lr=1e-3, embedding_size=64, seed=0, more_eval_batch_sizes=()):
        from mmbench.parity.adapters.recbole import write_split
        from mmbench.parity.recbole_compat import import_recbole, recbole_env

        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mmbench-recbole-"))
        self.env = lambda: recbole_env(self.workdir)  # noqa: E731
        write_split(self.workdir / "data" / "bench", "bench", split, test_users)
        with self.env():
            rb = import_recbole()
            self.rb = rb
            cfg = {
                "data_path": str(self.workdir / "data"), "benchmark_filename": ["train", "valid", "test"],
                "load_col": {"inter": ["user_id", "item_id"]}, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
                "eval_args": {"mode": "full", "order": "RO", "group_by": "user", "split": {"RS": [0.8, 0.1, 0.1]}},
                "metrics": ["Recall", "NDCG", "Precision", "Hit", "MRR", "MAP"], "topk": list(ks),
                "valid_metric": "NDCG@10", "metric_decimal_place": 12, "eval_batch_size": int(eval_batch_size),
                "train_batch_size": train_batch_size, "learning_rate": lr, "embedding_size": embedding_size,
                "seed": seed, "reproducibility": True, "device": "cpu", "use_gpu": False, "show_progress": False,
                "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0,
                                          "dynamic": False, "candidate_num": 0},
                "checkpoint_dir": str(self.workdir / "saved"), "save_dataset": False, "save_dataloaders": False,
                "log_wandb": False, "state": "ERROR", "worker": 0,
            }
            self.config = rb["Config"](model="BPR", dataset="bench", config_dict=cfg)
            self.dataset = rb["create_dataset"](self.config)
            self.train_data, self.valid_data, self.test_data = rb["data_preparation"](self.config, self.dataset)
            tok_u = self.dataset.field2id_token["user_id"]
            tok_i = self.dataset.field2id_token["item_id"]
            self.our_user = np.array([-1] + [int(t) for t in tok_u[1:]], dtype=np.int64)  # RecBole id -> ours
            self.our_item = np.array([-1] + [int(t) for t in tok_i[1:]], dtype=np.int64)
            self.rb_user = np.zeros(split.n_users, np.int64)
            self.rb_user[self.our_user[1:]] = np.arange(1, len(self.our_user))
            self.rb_item = np.zeros(split.n_items, np.int64)
            self.rb_item[self.our_item[1:]] = np.arange(1, len(self.our_item))
            # more test loaders over the same dataset and sampler, other eval_batch_size (RecBole
            # reads it when a loader is built)
            self.test_loaders = {int(eval_batch_size): self.test_data}
            for ebs in more_eval_batch_sizes:
                self.config["eval_batch_size"] = int(ebs)
                self.test_loaders[int(ebs)] = type(self.test_data)(self.config, self.test_data._dataset,
                                                                   self.test_data._sampler, shuffle=False)
            self.config["eval_batch_size"] = int(eval_batch_size)
            if scores is not None:
                self.model = self._fixed_model(scores)
                self.trainer = rb["Trainer"](self.config, self.model)

    def _fixed_model(self, scores):
        rb = self.rb
        our_user = torch.as_tensor(self.our_user.clip(min=0))
        V = scores.V_t[torch.as_tensor(self.our_item.clip(min=0))].clone()  # row 0 ([PAD]) is masked by RecBole

        class FixedScores(rb["GeneralRecommender"]):
            input_type = rb["InputType"].PAIRWISE

            def __init__(self, config, dataset):
                super().__init__(config, dataset)
                self.unused = torch.nn.Parameter(torch.zeros(1))

            def full_sort_predict(self, interaction):
                u = our_user[interaction[self.USER_ID]]
                return (scores.U_t[u] @ V.T).view(-1)

        return FixedScores(self.config, self.train_data._dataset)

    def evaluate(self, eval_batch_size: int | None = None) -> dict:
        loader = self.test_data if eval_batch_size is None else self.test_loaders[int(eval_batch_size)]
        with self.env():
            res = self.trainer.evaluate(loader, load_best_model=False, show_progress=False)
        return {k.lower(): float(v) for k, v in res.items()}

    # training (the BPR comparison) ------------------------------------------------------------
    def bpr(self, seed: int = 0):
        with self.env():
            from recbole.utils import init_seed

            init_seed(seed, True)
            model = self.rb["BPR"](self.config, self.train_data._dataset)
            trainer = self.rb["Trainer"](self.config, model)
        return model, trainer

    def train_epoch(self, trainer, epoch: int) -> float:
        with self.env():
            t0 = time.perf_counter()
            trainer._train_epoch(self.train_data, epoch, show_progress=False)
            return time.perf_counter() - t0

    def score_fn(self, model):
        """Scores of a RecBole BPR in our user/item order."""
        rb_user, rb_item = torch.as_tensor(self.rb_user), torch.as_tensor(self.rb_item)

        def f(users):
            with torch.no_grad():
                V = model.item_embedding.weight[rb_item]
                return model.user_embedding.weight[rb_user[users]] @ V.T
        return f


# -- Cornac ---------------------------------------------------------------------------------------
class CornacPeer:
    """Cornac's ``ranking_eval`` (one user at a time) over a model whose ``score`` returns our
    scores; train/valid items are excluded the way Cornac does (train + val sets)."""

    def __init__(self, split, scores=None, *, test_users=None, ks=(10, 20)):
        import cornac
        from cornac.eval_methods import BaseMethod

        def triples(part, users=None):
            u, i, _ = split.pairs(part)
            if users is not None:
                keep = np.zeros(split.n_users, bool)
                keep[users] = True
                u, i = u[keep[u]], i[keep[u]]
            return [(str(a), str(b), 1.0) for a, b in zip(u.tolist(), i.tolist())]

        self.cornac = cornac
        bm = BaseMethod.from_splits(train_data=triples("train"), test_data=triples("test", test_users),
                                    val_data=triples("valid"), exclude_unknowns=False, verbose=False)
        self.train_set, self.test_set, self.val_set = bm.train_set, bm.test_set, bm.val_set
        uid_map, iid_map = self.train_set.uid_map, self.train_set.iid_map
        self.our_user = np.full(len(uid_map), -1, np.int64)
        for raw, idx in uid_map.items():
            self.our_user[idx] = int(raw)
        self.our_item = np.full(len(iid_map), -1, np.int64)
        for raw, idx in iid_map.items():
            self.our_item[idx] = int(raw)
        self.cn_user = np.full(split.n_users, -1, np.int64)
        self.cn_user[self.our_user] = np.arange(len(self.our_user))
        self.cn_item = np.full(split.n_items, -1, np.int64)
        self.cn_item[self.our_item] = np.arange(len(self.our_item))
        m = cornac.metrics
        self.metrics = [c(k=k) for k in ks for c in (m.Recall, m.NDCG, m.Precision, m.HitRatio)]
        self.names = [f"{b}@{k}" for k in ks for b in ("recall", "ndcg", "precision", "hit")]
        if scores is not None:
            self.model = self._fixed_model(scores)

    def _fixed_model(self, scores):
        Recommender = self.cornac.models.Recommender
        our_user, V = self.our_user, np.ascontiguousarray(scores.V[self.our_item])
        U = scores.U

        class FixedScores(Recommender):
            def __init__(self):
                super().__init__(name="FixedScores", trainable=False, verbose=False)

            def score(self, user_idx, item_idx=None):
                s = V @ U[our_user[user_idx]]
                return s if item_idx is None else s[item_idx]

        return FixedScores().fit(self.train_set, self.val_set)

    def evaluate(self, model=None):
        from cornac.eval_methods.base_method import ranking_eval

        avg, per_user = ranking_eval(model or self.model, self.metrics, self.train_set, self.test_set,
                                     val_set=self.val_set, exclude_unknowns=False, verbose=False)
        means = dict(zip(self.names, map(float, avg)))
        per = {}
        for n, d in zip(self.names, per_user):
            idx = np.fromiter(d.keys(), np.int64)
            per[n] = (self.our_user[idx], np.fromiter(d.values(), float))
        return means, per

    # training (the BPR comparison) ------------------------------------------------------------
    def bpr(self, k: int, lr: float, reg: float, seed: int | None, threads: int = 0):
        return self.cornac.models.BPR(k=k, max_iter=1, learning_rate=lr, lambda_reg=reg, seed=seed,
                                      num_threads=threads, verbose=False)

    def train_epoch(self, model) -> float:
        t0 = time.perf_counter()
        model.fit(self.train_set, self.val_set)  # max_iter=1: one more epoch (factors are kept)
        return time.perf_counter() - t0

    def score_fn(self, model):
        cn_user, cn_item = torch.as_tensor(self.cn_user), torch.as_tensor(self.cn_item)

        def f(users):
            U = torch.from_numpy(model.u_factors)[cn_user[users]]
            V = torch.from_numpy(model.i_factors)[cn_item]
            B = torch.from_numpy(model.i_biases)[cn_item]
            return U @ V.T + B
        return f
