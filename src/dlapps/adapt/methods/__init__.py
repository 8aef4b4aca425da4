"""Domain adaptation methods, registered by name (see :mod:`.base` for the interface)."""

from __future__ import annotations

from dlapps.adapt.methods.base import Method
from dlapps.adapt.methods.dann import DANN, DANNNoGRL
from dlapps.adapt.methods.supervised import SourceOnly, TargetOracle
from dlapps.errors import UnknownNameError

METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in [
        SourceOnly,
        DANN,
        DANNNoGRL,
        TargetOracle,
    ]
}


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; unknown names list the valid ones."""
    if name not in METHODS:
        raise UnknownNameError("method", name, METHODS)
    return METHODS[name]


__all__ = ["METHODS", "Method", "get_method"]
