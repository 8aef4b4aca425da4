"""Semi-supervised methods, registered by name (see :mod:`.base` for the interface)."""

from __future__ import annotations

from dlapps.registry import Registry
from dlapps.semi.base import SemiMethod
from dlapps.semi.fixmatch import FixMatch
from dlapps.semi.mean_teacher import MeanTeacher
from dlapps.semi.pseudo_label import PseudoLabel
from dlapps.semi.supervised import Full, Supervised

METHODS: Registry[type[SemiMethod]] = Registry("semi-supervised method")
for _m in (Supervised, PseudoLabel, MeanTeacher, FixMatch, Full):
    METHODS.register(_m.name, _m)

__all__ = ["METHODS", "SemiMethod"]
