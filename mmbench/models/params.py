"""Declared hyper-parameters: each model states its parameters once, as class attributes.

A :class:`Param` holds the type, the default, the allowed range or choices and a one-line
help. The declaration drives construction and validation (a bad value is refused before
training with one line naming the parameter, the value and what is allowed), ``models
info``, the run record's ``params`` and the suites' search spaces::

    class MyModel(TorchRecommender, epochs=300):           # a base parameter's new default
        embedding_dim = Param(64, ge=1, help="size of user and item factors")
        reg = Param(1e-4, ge=0.0, help="L2 weight on the batch's embeddings")
        missing = Param("drop", choices=("drop", "embed"), help="how a missing row is handled")

Values are coerced to the declared type where that loses nothing (``1`` for a float
parameter becomes ``1.0``; ``5.0`` for an int becomes ``5``), so the same configuration
always hashes the same. Nothing here imports torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError

_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One hyper-parameter. ``ge``/``gt``/``le``/``lt`` bound numbers (inclusive/exclusive);
    ``choices`` lists the allowed values; ``nullable`` admits ``None`` (e.g. "follows another
    parameter"); ``log`` says the natural search scale is logarithmic; ``space`` is the
    search space a suite's tuning budget draws from (a few values, the default in the
    middle). A subclass that gives a float parameter another default (a class keyword)
    moves its space with it: the values are scaled by new/old default, so the default
    stays in the middle."""

    default: Any
    help: str = ""
    type: type | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    log: bool = False
    space: tuple | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self):
        t = self.type
        if t is None:
            if self.default is None:
                raise TypeError("Param(None) needs type= (and nullable=True)")
            t = type(self.default)
            object.__setattr__(self, "type", t)
        if t not in _TYPES:
            raise TypeError(f"Param type must be one of {[x.__name__ for x in _TYPES]}, not {t.__name__}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.space is not None:
            object.__setattr__(self, "space", tuple(self.space))
        if self.default is None and not self.nullable:
            object.__setattr__(self, "nullable", True)

    def __set_name__(self, owner, name):
        object.__setattr__(self, "name", name)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            return self.default

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value

    def with_default(self, default) -> "Param":
        space = self.space
        if space and self.type is float and _positive(default) and _positive(self.default) and default != self.default:
            space = tuple(float(f"{v * default / self.default:.6g}") for v in space)
        return replace(self, default=default, space=space)

    # -- validation -------------------------------------------------------------------------
    def allowed(self) -> str:
        """What the parameter accepts, in words (for errors and ``models info``)."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        else:
            bounds = [f"{op} {v:g}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                      if v is not None]
            text = self.type.__name__ + (" " + " and ".join(bounds) if bounds else "")
        return text + (" or None" if self.nullable else "")

    def validate(self, value: Any, where: str = "") -> Any:
        """``value`` coerced to the declared type, or a ConfigError naming parameter, value
        and what is allowed."""
        if value is None and self.nullable:
            return None
        v = self._coerce(value)
        ok = v is not None and (self.choices is None or v in self.choices) and self._in_range(v)
        if not ok:
            raise ConfigError(f"{self.name}={value!r} is not allowed: must be {self.allowed()}",
                              where=where or None, hint=self.help or None)
        return v

    def _coerce(self, value):
        t = self.type
        if isinstance(value, bool) or t is bool:
            return value if isinstance(value, bool) and t is bool else None
        if t is int:
            if isinstance(value, int):
                return value
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                return int(value)
            return None
        if t is float:
            if isinstance(value, (int, float)) and math.isfinite(value):
                return float(value)
            return None
        return value if isinstance(value, str) else None

    def _in_range(self, v) -> bool:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return True
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))

    def describe(self) -> dict:
        """The declaration as plain data (``models info``, docs)."""
        out = {"name": self.name, "type": self.type.__name__, "default": self.default, "allowed": self.allowed(),
               "help": self.help}
        if self.space is not None:
            out["space"] = list(self.space)
        return out


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def collect_params(cls) -> dict[str, Param]:
    """Every parameter a class declares or inherits, each name once, the class's own new
    ones first and then its bases' in their order. A subclass's declaration (or a class
    keyword's new default) overrides its base's; a plain class attribute of the same name
    removes it (``batch_size = 0`` in a model without mini-batches)."""
    value: dict[str, Param] = {}
    hidden: set[str] = set()
    origin: dict[str, tuple[int, int]] = {}  # name -> (depth of the deepest declaring class, position)
    for depth, klass in enumerate(cls.__mro__):
        for pos, (name, attr) in enumerate(vars(klass).items()):
            if name not in value and name not in hidden:
                if isinstance(attr, Param):
                    value[name] = attr
                else:
                    hidden.add(name)
            if isinstance(attr, Param):
                origin[name] = (depth, pos)
    return {name: value[name] for name in sorted(value, key=lambda n: origin[n])}


def params_from_signature(cls) -> dict[str, Param]:
    """Params for a class that takes its hyper-parameters as ``__init__`` keyword arguments
    with defaults (plugins written before declarations existed): the type is the default's,
    with no range. A parameter without a default or of another type is an error."""
    import inspect

    out = {}
    where = f"{cls.__module__}.{cls.__qualname__}"
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConfigError(f"__init__ takes {'*' if p.kind == p.VAR_POSITIONAL else '**'}{p.name}: "
                              "hyper-parameters must be named", where=where,
                              hint="declare each one: name = Param(default, help=...)")
        if p.default is p.empty:
            raise ConfigError(f"parameter {p.name!r} has no default", where=where,
                              hint="declare it: name = Param(default, help=...)")
        if p.default is not None and not isinstance(p.default, _TYPES):
            raise ConfigError(f"parameter {p.name!r} has a default of type {type(p.default).__name__}",
                              where=where, hint="hyper-parameters are bool, int, float, str or None")
        param = Param(p.default, type=type(p.default) if p.default is not None else str, nullable=p.default is None)
        param.__set_name__(cls, p.name)
        out[p.name] = param
    return out


def validate_params(params: dict[str, Param], given: dict, where: str) -> dict:
    """Defaults merged with ``given``, every value validated; unknown names are an error."""
    unknown = sorted(set(given) - set(params))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(params), n=1)
        raise ConfigError(f"has no parameter(s) {unknown}", where=where,
                          hint=(f"did you mean {close[0]!r}? " if close else "")
                          + f"its parameters are: {', '.join(params) or 'none'}")
    return {name: p.validate(given.get(name, p.default), where) for name, p in params.items()}


def check_space(params: dict[str, Param], grid: dict, where: str) -> None:
    """A suite's grid values (``{name: [values]}``) and Optuna space (``{name: {low, high} or
    {choices}}``) must lie inside the declared parameters' ranges."""
    for name, spec in grid.items():
        if name not in params:
            raise ConfigError(f"searches parameter {name!r}, which the model does not have", where=where,
                              hint=f"its parameters are: {', '.join(params) or 'none'}")
        values = spec if isinstance(spec, list) else spec.get("choices") or [spec.get("low"), spec.get("high")]
        for v in values:
            params[name].validate(v, where)
