"""Domain adaptation: DANN (Ganin & Lempitsky 2015) with its gradient reversal layer and the
methods around it (DAN, CORAL, ADDA, DRCN, CDAN, self-training), label-free model selection, and
the method × pair grid. Public entry points: :func:`dlapps.adapt.experiment.run_adapt`,
:func:`dlapps.adapt.compare.run_compare`, :class:`dlapps.adapt.config.AdaptConfig`."""
