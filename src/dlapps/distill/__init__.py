"""Knowledge distillation: a small student learns from a bigger teacher's response (soft
targets, Hinton et al. 2015), features (FitNets hints, Romero et al. 2015) or relations (RKD,
Park et al. 2019), beside the same student trained from scratch. Public entry points:
:func:`dlapps.distill.experiment.run_distill`, :class:`dlapps.distill.config.DistillConfig`,
:data:`dlapps.distill.kinds.KINDS`; the networks are :mod:`dlapps.models.nets`."""
