"""Domain adaptation methods, registered by name (see :mod:`.base` for the interface).

Any registered name followed by ``+self-train`` (``dann+self-train``, ``cdan+e+self-train``) is
that method with the self-training loss added (:mod:`.self_training`): composition by name.
"""

from __future__ import annotations

from dlapps.adapt.methods.adda import ADDA
from dlapps.adapt.methods.base import Method
from dlapps.adapt.methods.cdan import CDAN, CDANE
from dlapps.adapt.methods.coral import DeepCORAL
from dlapps.adapt.methods.dan import DAN, WDAN
from dlapps.adapt.methods.dann import DANN, DANNNoGRL
from dlapps.adapt.methods.dirt_t import DIRTT
from dlapps.adapt.methods.drcn import DRCN
from dlapps.adapt.methods.mcc import MCC
from dlapps.adapt.methods.self_training import SUFFIX, SelfTraining, with_self_training
from dlapps.adapt.methods.supervised import SourceOnly, TargetOracle
from dlapps.adapt.methods.vada import VADA
from dlapps.registry import Registry


def _composed(name: str) -> type[Method] | None:
    """``<method>+self-train``: a registered method with the self-training loss added."""
    if name.endswith(SUFFIX) and name[: -len(SUFFIX)] in METHODS:
        return with_self_training(METHODS[name[: -len(SUFFIX)]])
    return None


METHODS: Registry[type[Method]] = Registry("method", extra_names=(f"<method>{SUFFIX}",), fallback=_composed)
for _m in (SourceOnly, DANN, DANNNoGRL, TargetOracle, DAN, WDAN, DeepCORAL, ADDA, DRCN, CDAN, CDANE,
           VADA, DIRTT, MCC, SelfTraining):
    METHODS.register(_m.name, _m)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name`` (or ``<name>+self-train``); unknown names list the
    valid ones."""
    return METHODS[name]


__all__ = ["METHODS", "Method", "get_method"]
