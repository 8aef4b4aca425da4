"""dlapps.explain: look inside a CNN by its gradients with respect to the input.

Saliency maps (:mod:`.saliency`) and their faithfulness (:mod:`.metrics`), adversarial examples
(:mod:`.attacks`), class model visualisation (:mod:`.classvis`) and activation maps
(:mod:`.activations`) — all on batches of images in [0,1] pixel space, on any
:class:`~dlapps.explain.models.ExplainModel`. :mod:`.experiment` holds the commands as functions
(their settings in :mod:`.config`, their figures and pages in :mod:`.report`).

Nothing heavy is imported here, so ``dlapps --help`` (which imports :mod:`.cli`) stays fast.
"""
