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

Collapse guard (dlapps' rule, not the paper's; option ``guard``, default 0.75, 0 = off, and off
in ``--preset paper``). Conditional entropy and VAT are both minimised by a classifier that puts
every target image in one class, and β KL ties the student only to a teacher that follows it at
every refresh; on a pair where the cluster assumption fails the refinement slides there, a little
at each refresh (fashion → fashionm: 4.2 effective classes at the switch, 2.8 after one interval,
then 2.4, 2.2; one seed at chance; bench/results/adapt_compare.md). So the method keeps an
exponential moving average (decay 0.95) of the shares of the classes the student predicts on the
*unlabelled* target batches, and the same for VADA's solution (the teacher of the first interval)
while it is the teacher; at each later refresh it compares their effective numbers of classes
exp H: when the student's falls below ``guard`` times VADA's, the refinement stops — the student
is reset to the teacher of that moment, which is no longer refreshed, and only β KL to it
remains. No label of either domain is read. The threshold 0.75 was set after seeing the fashion
failure (a slide of a third in one interval), not by target accuracy on any pair.

Options (``method_options["dirt-t"]``): VADA's (``domain_weight``, ``source_vat``,
``target_weight``, ``radius``, ``xi``) for stage 1 and λ_t, ε, ξ of stage 2; ``beta`` β = 1e-2
(the paper's), ``switch`` = 0.5, ``refresh`` = 0.1, ``guard`` = 0.75.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.adapt.health import perplexity
from dlapps.adapt.losses import conditional_entropy
from dlapps.adapt.methods.vada import VADA, number_option


def deployed(net) -> nn.Sequential:
    """The classifier path the method deploys: normalize → G_f → G_y (the net's own modules)."""
    return nn.Sequential(net.normalize, net.features, net.classifier)


class DIRTT(VADA):
    name = "dirt-t"
    description = "VADA, then target-only refinement against a periodically refreshed teacher"
    options = {**VADA.options, "beta": 1e-2, "switch": 0.5, "refresh": 0.1, "guard": 0.75}
    decay = 0.95  # of the mean-prediction averages the collapse guard compares

    def __init__(self, net, config):
        super().__init__(net, config)
        self.beta = number_option(self, "beta")
        self.switch = number_option(self, "switch", (lambda v: 0 < v < 1, "a fraction between 0 and 1"))
        self.refresh = number_option(self, "refresh", (lambda v: 0 < v <= 1, "a fraction in (0, 1]"))
        given = (getattr(config, "method_options", None) or {}).get(self.name, {})
        paper = getattr(config, "preset", None) == "paper" and "guard" not in given
        self.guard = 0.0 if paper else number_option(self, "guard", (lambda v: 0 <= v < 1, "in [0, 1)"))
        self.teacher = copy.deepcopy(deployed(net)).requires_grad_(False).eval()
        self.register_buffer("teacher_interval", torch.tensor(-1))  # -1: not taken yet
        classes = [m for m in net.classifier.modules() if isinstance(m, nn.Linear)][-1].out_features
        self.register_buffer("mean_student", torch.full((classes,), 1.0 / classes))
        self.register_buffer("mean_vada", torch.full((classes,), 1.0 / classes))  # the first teacher's
        self.register_buffer("stopped", torch.tensor(0))  # 1: the guard ended the refinement

    def train(self, mode: bool = True) -> DIRTT:
        super().train(mode)
        self.teacher.eval()
        return self

    def interval(self, progress: float) -> int:
        """The index of the refresh interval ``progress`` falls in (0 from the switch on)."""
        return math.floor((progress - self.switch) / self.refresh + 1e-9)

    def collapsed(self) -> bool:
        """The guard's test: the student's effective number of predicted target classes (exp H of
        its recent predicted-class shares) below ``guard`` times VADA's (the first teacher's) —
        the measure of the run's collapse warning, on unlabelled target batches."""
        return bool(self.guard) and perplexity(self.mean_student) < self.guard * perplexity(self.mean_vada)

    def forward(self, xs, ys, xt, yt, progress):
        if progress < self.switch:
            return super().forward(xs, ys, xt, yt, progress)
        interval = self.interval(progress)
        if interval != int(self.teacher_interval) and not int(self.stopped):
            if int(self.teacher_interval) >= 0 and self.collapsed():  # end the refinement
                deployed(self.net).load_state_dict(self.teacher.state_dict())
                self.stopped.fill_(1)
            else:
                self.teacher.load_state_dict(deployed(self.net).state_dict())
            self.teacher_interval.fill_(interval)
        z = self.net.normalize(xt)
        logits = self.classify(z)
        with torch.no_grad():
            teacher = self.teacher(xt).float().log_softmax(1)
            tracked = [(self.mean_student, logits)]
            if int(self.teacher_interval) == 0:  # VADA's solution is the teacher
                tracked.append((self.mean_vada, teacher))
            for mean, scores in tracked:
                share = F.one_hot(scores.argmax(1), len(mean)).float().mean(0)
                mean.mul_(self.decay).add_(share, alpha=1 - self.decay)
        kl = F.kl_div(logits.float().log_softmax(1), teacher, reduction="batchmean", log_target=True)
        if int(self.stopped):
            return {"loss": self.beta * kl, "teacher_kl": kl, "refine_stopped": 1.0}
        cond_entropy, vat = conditional_entropy(logits), self.vat(z, logits)
        return {"loss": self.beta * kl + self.target_weight * (cond_entropy + vat), "teacher_kl": kl,
                "cond_entropy": cond_entropy, "vat_target": vat, "refine_stopped": 0.0}

