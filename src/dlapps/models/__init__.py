"""Networks: the DANN papers' digit networks (:mod:`dlapps.models.digits`)."""

from dlapps.models.digits import ARCHS, DomainAdaptationNet, Normalize, build_digits_net

__all__ = ["ARCHS", "DomainAdaptationNet", "Normalize", "build_digits_net"]
