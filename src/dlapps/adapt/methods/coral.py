r"""Deep CORAL: correlation alignment (Sun & Saenko, ECCV 2016 workshops).

Adds to the source cross-entropy the distance between the second-order statistics of the
source and target activations of the chosen layers (by default the logits, as in the paper)::

    ℓ_CORAL = ‖C_S − C_T‖²_F / (4 d²),    C = (1/(n−1)) (XᵀX − (1/n)(1ᵀX)ᵀ(1ᵀX))

    min_θ  L_y + λ_p · w · Σ_ℓ ℓ_CORAL(ℓ)

with d the layer's width, λ_p the DANN schedule and w the weight (option ``weight``; the paper
picks it so that both losses are of the same order at the end of training: with d = 10 the
1/(4d²) factor is 1/400, hence the default w = 100). It is DAN with another discrepancy.
"""

from __future__ import annotations

from dlapps.adapt.losses import coral
from dlapps.adapt.methods.dan import DAN


class DeepCORAL(DAN):
    name = "coral"
    description = "Deep CORAL: align source and target feature covariances (discrepancy-based)"
    options = {**DAN.options, "layers": ("logits",), "weight": 100.0}

    def discrepancy(self, source, target, weights):
        return coral(source, target)
