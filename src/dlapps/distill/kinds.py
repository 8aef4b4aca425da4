"""The kinds of knowledge a student learns from, by name: ``scratch`` (no teacher: the baseline),
``response`` (Hinton et al. 2015), ``feature`` (FitNets, Romero et al. 2015) and ``relation``
(RKD, Park et al. 2019). A new kind is one file with a :class:`~dlapps.distill.base.Distillation`
subclass and one line here."""

from __future__ import annotations

from dlapps.distill.base import Distillation
from dlapps.distill.feature import Feature
from dlapps.distill.relation import Relation
from dlapps.distill.response import Response
from dlapps.distill.scratch import Scratch
from dlapps.registry import Registry

KINDS: Registry[type[Distillation]] = Registry("distillation kind")
for _kind in (Scratch, Response, Feature, Relation):
    KINDS.register(_kind.name, _kind)

SCRATCH = Scratch.name
