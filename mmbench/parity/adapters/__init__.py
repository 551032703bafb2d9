"""Peer adapters: a packaged implementation of one of our models, trained by its own code on
our split and scored in our item order, so that our evaluator ranks it.

An adapter module (``recbole``, ``cornac``) has:

- ``MODELS``: our model name -> a function of our resolved hyper-parameters returning a
  :class:`Mapping` (the peer's model and settings, and in words where the conventions differ);
- ``version() -> str`` and ``build(dataset, features, mapping, seed, workdir, device) -> PeerModel``.

A :class:`PeerModel` trains with the peer's own training code, one epoch at a time, calling
``epoch_end(epoch, loss)`` after each (a true answer stops it); ``score(users)`` returns a
``(b, n_items)`` tensor over our item indices; ``state_dict``/``load_state_dict`` keep and
restore the best epoch. Importing this package imports no peer.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ...errors import ConfigError

PEERS = ("recbole", "cornac")


@dataclass
class Mapping:
    """Our hyper-parameters translated for a peer model."""

    peer_model: str
    settings: dict
    notes: list[str] = field(default_factory=list)  # conventions: what differs and how it was matched
    features: str | None = None  # content models: how the peer's features are preprocessed (as ours by default)

    def as_dict(self) -> dict:
        return {"peer_model": self.peer_model, "settings": self.settings, "features": self.features,
                "notes": self.notes}


class PeerModel(Protocol):
    def train(self, epoch_end: Callable[[int, float | None], bool], epochs: int) -> None: ...

    def score(self, users): ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def adapter(peer: str):
    """The adapter module of ``peer`` (imports the peer only when a model is built)."""
    if peer not in PEERS:
        raise ConfigError(f"unknown peer {peer!r}", hint=f"peers: {', '.join(PEERS)}")
    return importlib.import_module(f"{__name__}.{peer}")


def mapping(peer: str, model: str, params: dict) -> Mapping:
    """How ``peer`` runs our ``model`` with ``params``; a model the peer does not have is an error."""
    models = adapter(peer).MODELS
    if model not in models:
        raise ConfigError(f"{peer} has no implementation of {model!r}",
                          hint=f"{peer} covers: {', '.join(sorted(models))}" + _elsewhere(model, peer))
    return models[model](params)


def _elsewhere(model: str, peer: str) -> str:
    others = [p for p in PEERS if p != peer and model in adapter(p).MODELS]
    return f"; {model} is covered by {', '.join(others)}" if others else ""


def peer_models() -> dict[str, list[str]]:
    """peer -> our model names it covers."""
    return {p: sorted(adapter(p).MODELS) for p in PEERS}
