"""The evaluation protocol: which metrics, which main metric, what is masked at test time.

The benchmark owns it (a suite fixes it); models only fit and score. Its canonical dict
and hash go into every run record, and leaderboards reject records whose protocol differs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import ConfigError
from .io import hash_params

DEFAULT_METRICS = [f"{m}@{k}" for k in (10, 20) for m in ("recall", "ndcg", "precision", "hit", "mrr", "map")]

#: The ranking order of every evaluation (``kernels.exact_topk``), noted in each run record as
#: ``env.ranking``: a record without it ranked tied scores in the order ``torch.topk`` returned.
RANKING = "score desc, item index asc"


def canonical_metric(name: str) -> str:
    """``'NDCG@10'`` -> ``'ndcg@10'``; an item-group suffix is kept: ``'Recall@20/tail'`` ->
    ``'recall@20/tail'`` (the metric restricted to long-tail items). A protocol lists ranking
    and rating metrics; the beyond-accuracy ones come with every evaluation."""
    from .evaluate.metrics import canonical, get

    out = canonical(name)
    kind = get(out).kind
    if kind not in ("ranking", "rating"):
        raise ConfigError(f"metric {name!r} is a {kind} metric: every ranking evaluation reports it",
                          hint="list ranking metrics (name@k) and rating metrics in a protocol")
    return out


@dataclass(frozen=True)
class Protocol:
    metrics: tuple[str, ...] = tuple(DEFAULT_METRICS)
    main_metric: str = "ndcg@10"
    mask_valid_at_test: bool = True  # test ranking excludes train and valid items
    candidates: str = "all"  # full ranking; sampled evaluation is not offered
    fit_on: str = "train"  # models are trained on train only; valid is for selection
    selection: str = "valid"  # early stopping / model selection on the valid split only
    rating_metrics: tuple[str, ...] = ("rmse", "mae")

    def __post_init__(self):
        object.__setattr__(self, "metrics", tuple(canonical_metric(m) for m in self.metrics))
        object.__setattr__(self, "main_metric", canonical_metric(self.main_metric))
        if self.candidates != "all":
            raise ConfigError("only full ranking (candidates = 'all') is supported: sampled metrics mislead")
        if self.fit_on != "train" or self.selection != "valid":
            raise ConfigError("models are fit on train and selected on valid; other settings are not supported")
        if self.main_metric not in self.metrics and self.main_metric not in self.rating_metrics:
            object.__setattr__(self, "metrics", self.metrics + (self.main_metric,))

    @property
    def ranking_metrics(self) -> list[str]:
        from .evaluate.metrics import get

        return [m for m in self.metrics if get(m).kind == "ranking"]

    def valid_metric(self, model_task: str) -> str:
        """The validation metric that early stopping and model selection use for a model of
        ``model_task``: the main metric, except that a model that only ranks is judged on the
        first ranking metric when the main metric is a rating metric."""
        from .evaluate.metrics import get

        if model_task != "rating" and get(self.main_metric).kind == "rating":
            return self.ranking_metrics[0]
        return self.main_metric

    def as_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = list(self.metrics)
        d["rating_metrics"] = list(self.rating_metrics)
        return d

    @property
    def hash(self) -> str:
        return hash_params(self.as_dict())[:16]

    @classmethod
    def from_dict(cls, d: dict) -> "Protocol":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown protocol keys {sorted(unknown)}", hint=f"allowed: {sorted(known)}")
        d = dict(d)
        for k in ("metrics", "rating_metrics"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
