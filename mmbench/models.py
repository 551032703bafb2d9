"""The model protocol (sklearn-like) that every baseline and plugin implements.

- ``__init__`` only stores hyper-parameters (explicit keyword arguments with defaults), so
  ``get_params``, cloning and hashing are trivial; learned state ends in ``_``.
- ``fit(data, features, *, seed, device, validator=None)`` returns ``self``. ``data`` is a
  :class:`~mmbench.data.dataset.TrainData` (training interactions only); ``features`` maps
  feature keys to :class:`~mmbench.features.store.Feature` for the modalities the model
  declares in ``requires``/``requires_any``/``uses``; ``validator`` (given by the harness)
  returns the validation metrics for early stopping: the model never sees valid/test labels.
- ``score(users) -> Tensor[b, n_items]``: higher is better, a fresh tensor on the device.
- Rating models (``task = "rating"``) add ``predict(users, items) -> Tensor[b]``.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar


class Recommender:
    task: ClassVar[str] = "ranking"  # "ranking" or "rating" (rating models rank too)
    requires: ClassVar[tuple[str, ...]] = ()  # modalities that must be present, e.g. ("text",)
    uses: ClassVar[tuple[str, ...]] = ()  # modalities used when present (optional)
    # at least one feature of one of these modalities must be present (a content model that
    # takes any non-empty subset of text/image/audio); they count as used when present
    requires_any: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""

    # -- parameters ----------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values()
                if p.name in cls.param_names() and p.default is not inspect.Parameter.empty}

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params) -> "Recommender":
        unknown = set(params) - set(self.param_names())
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)} for {type(self).__name__}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def clone(self) -> "Recommender":
        return type(self)(**self.get_params())

    # -- the protocol ----------------------------------------------------------------------
    def fit(self, data, features=None, *, seed: int = 0, device: str = "cpu", validator=None) -> "Recommender":
        raise NotImplementedError

    def score(self, users):
        raise NotImplementedError

    def predict(self, users, items):
        """Rating models: predicted rating of each (user, item) pair."""
        raise NotImplementedError(f"{type(self).__name__} is not a rating model")

    # filled by fit for the run record (optional)
    fit_info_: dict

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def declared_modalities(model_cls) -> tuple[set, set, set]:
    """(requires, requires_any, every modality the model reads) as its class declares them;
    works for any class, Recommender subclass or not."""
    requires = set(getattr(model_cls, "requires", ()))
    any_of = set(getattr(model_cls, "requires_any", ()))
    return requires, any_of, requires | any_of | set(getattr(model_cls, "uses", ()))
