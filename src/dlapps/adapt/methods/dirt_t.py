r"""DIRT-T: decision-boundary iterative refinement training with a teacher (Shu, Bui, Narui &
Ermon, ICLR 2018).

Two stages inside one training run, split by progress p (option ``switch``, default 0.5):

1. p < switch — VADA (:mod:`.vada`): source cross-entropy, domain-adversarial term, conditional
   entropy and VAT.
2. p ≥ switch — the target alone. Starting from VADA's solution, the classifier h_θ is refined
   by natural-gradient-like steps that stay close to the previous solution h_{θ_{n−1}} (the
   teacher) while pushing the decision boundary away from the target's dense regions::

       min_θ  β E_{x∈T} KL(h_{θ_{n−1}}(x) ‖ h_θ(x)) + λ_t (H_t(θ) + VAT_t(θ))

   with no source and no domain term (G_d gets no gradient). The teacher is a frozen copy of the
   deployed classifier (normalize → G_f → G_y, evaluated in eval mode), taken at the switch and
   refreshed every ``refresh`` of progress (the paper's "every K iterations"): at a step whose
   interval ⌊(p − switch) / refresh⌋ differs from that of the teacher's last refresh. Teacher and
   interval are saved in checkpoints, so a resumed run continues with the same teacher.

Options (``method_options["dirt-t"]``): VADA's (``domain_weight``, ``source_vat``,
``target_weight``, ``radius``, ``xi``) for stage 1 and λ_t, ε, ξ of stage 2; ``beta`` β = 1e-2
(the paper's), ``switch`` = 0.5, ``refresh`` = 0.1.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.adapt.losses import conditional_entropy
from dlapps.adapt.methods.vada import VADA, number_option


def deployed(net) -> nn.Sequential:
    """The classifier path the method deploys: normalize → G_f → G_y (the net's own modules)."""
    return nn.Sequential(net.normalize, net.features, net.classifier)


class DIRTT(VADA):
    name = "dirt-t"
    description = "VADA, then target-only refinement against a periodically refreshed teacher"
    options = {**VADA.options, "beta": 1e-2, "switch": 0.5, "refresh": 0.1}

    def __init__(self, net, config):
        super().__init__(net, config)
        self.beta = number_option(self, "beta")
        self.switch = number_option(self, "switch", (lambda v: 0 < v < 1, "a fraction between 0 and 1"))
        self.refresh = number_option(self, "refresh", (lambda v: 0 < v <= 1, "a fraction in (0, 1]"))
        self.teacher = copy.deepcopy(deployed(net)).requires_grad_(False).eval()
        self.register_buffer("teacher_interval", torch.tensor(-1))  # -1: not taken yet

    def train(self, mode: bool = True) -> DIRTT:
        super().train(mode)
        self.teacher.eval()
        return self

    def interval(self, progress: float) -> int:
        """The index of the refresh interval ``progress`` falls in (0 from the switch on)."""
        return math.floor((progress - self.switch) / self.refresh + 1e-9)

    def forward(self, xs, ys, xt, yt, progress):
        if progress < self.switch:
            return super().forward(xs, ys, xt, yt, progress)
        interval = self.interval(progress)
        if interval != int(self.teacher_interval):
            self.teacher.load_state_dict(deployed(self.net).state_dict())
            self.teacher_interval.fill_(interval)
        z = self.net.normalize(xt)
        logits = self.classify(z)
        with torch.no_grad():
            teacher = self.teacher(xt).float().log_softmax(1)
        kl = F.kl_div(logits.float().log_softmax(1), teacher, reduction="batchmean", log_target=True)
        cond_entropy, vat = conditional_entropy(logits), self.vat(z, logits)
        return {"loss": self.beta * kl + self.target_weight * (cond_entropy + vat), "teacher_kl": kl,
                "cond_entropy": cond_entropy, "vat_target": vat}
