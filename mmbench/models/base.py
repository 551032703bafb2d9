"""The model protocol (sklearn-like) that every baseline and plugin implements.

- Hyper-parameters are declared once as class attributes (:class:`~.params.Param`); the
  constructor takes them as keyword arguments, validates them and stores them, nothing
  else. Learned state ends in ``_``.
- ``fit(data, features, *, seed, device, context=None)`` returns ``self``. ``data`` is a
  :class:`~mmbench.data.dataset.TrainData` (training interactions only); ``features`` maps
  feature keys to :class:`~mmbench.features.store.Feature` for the modalities the model
  declares in ``requires``/``requires_any``/``uses``; ``context`` (a
  :class:`~.training.FitContext`, given by the harness) scores the model on validation for
  early stopping and carries the checkpoint/resume settings: the model never sees
  valid/test labels.
- ``score(users) -> Tensor[b, n_items]``: higher is better, a fresh tensor on the device.
- Rating models (``task = "rating"``) add ``predict(users, items) -> Tensor[b]``.

Nothing here imports torch.
"""
from __future__ import annotations

from typing import Any, ClassVar

from ..errors import ConfigError
from .params import Param, collect_params, params_from_signature, validate_params


class Recommender:
    task: ClassVar[str] = "ranking"  # "ranking" or "rating" (rating models rank too)
    requires: ClassVar[tuple[str, ...]] = ()  # modalities that must be present, e.g. ("text",)
    uses: ClassVar[tuple[str, ...]] = ()  # modalities used when present (optional)
    # at least one feature of one of these modalities must be present (a content model that
    # takes any non-empty subset of text/image/audio); they count as used when present
    requires_any: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""
    params_: ClassVar[dict[str, Param]] = {}
    params_error_: ClassVar[ConfigError | None] = None

    def __init_subclass__(cls, **defaults):
        """Collects the declared parameters; keyword arguments of the class statement give
        inherited parameters a new default (``class LightGCN(TorchRecommender, epochs=1000)``)."""
        super().__init_subclass__()
        where = f"model class {cls.__qualname__}"
        inherited = collect_params(cls)
        for name, default in defaults.items():
            if name not in inherited:
                raise ConfigError(f"cannot set the default of {name!r}: no such parameter", where=where)
            setattr(cls, name, inherited[name].with_default(default))
        cls.params_error_ = None
        if cls.__init__ is Recommender.__init__:
            cls.params_ = collect_params(cls)
            for p in cls.params_.values():
                p.validate(p.default, where)
        else:  # hyper-parameters taken by an explicit __init__ (plugins written without Param)
            try:
                cls.params_ = params_from_signature(cls)
            except ConfigError as e:  # reported when the parameters are asked for (mmbench check)
                cls.params_, cls.params_error_ = {}, e

    def __init__(self, **params):
        for name, value in validate_params(self.params_, params, f"model {type(self).__name__}").items():
            setattr(self, name, value)

    # -- parameters ----------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        return list(cls.params_)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {name: p.default for name, p in cls.params_.items()}

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.params_}

    def set_params(self, **params) -> "Recommender":
        merged = validate_params(self.params_, {**self.get_params(), **params}, f"model {type(self).__name__}")
        for k in params:
            setattr(self, k, merged[k])
        return self

    def clone(self) -> "Recommender":
        return type(self)(**self.get_params())

    # -- the protocol ----------------------------------------------------------------------
    def fit(self, data, features=None, *, seed: int = 0, device: str = "cpu", context=None) -> "Recommender":
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


def model_params(cls) -> dict[str, Param]:
    """The declared parameters of any model class: a Recommender's declarations, or those
    read from the ``__init__`` signature of a class that does not derive from it."""
    if getattr(cls, "params_error_", None) is not None:
        raise cls.params_error_
    if isinstance(getattr(cls, "params_", None), dict):
        return cls.params_
    if cls.__init__ is object.__init__:
        return {}
    return params_from_signature(cls)


def declared_modalities(model_cls) -> tuple[set, set, set]:
    """(requires, requires_any, every modality the model reads) as its class declares them;
    works for any class, Recommender subclass or not."""
    requires = set(getattr(model_cls, "requires", ()))
    any_of = set(getattr(model_cls, "requires_any", ()))
    return requires, any_of, requires | any_of | set(getattr(model_cls, "uses", ()))
