r"""FixMatch (Sohn et al., NeurIPS 2020).

The network labels a *weakly* augmented view α(u) of each unlabelled image; where it is
confident, it learns that label on a *strongly* augmented view A(u) of the same image::

    L = (1/B) Σ_b CE(y_b, f(α(x_b))) + λ_u (1/μB) Σ_b 1[max q_b ≥ τ] CE(argmax q_b, f(A(u_b))),
        q_b = softmax f(α(u_b))   (no gradient)

with μB unlabelled images per B labelled. It is pseudo-labelling (the shared
:func:`~dlapps.semi.pseudo_label.pseudo_label_loss`, threshold τ, student view A) with the
threshold doing what α(t) does in Lee's method: early, few predictions pass τ, so the network is
not taught its first guesses. Weak: random shifts of up to 6.25% of the side (2 pixels on 28;
the paper's 12.5%, 4 pixels, slowed the start on mnist5k: 16.9% test accuracy after the first
epoch against 42.2% with 2 pixels, seed 0; no flips: digits).
Strong: :func:`~dlapps.data.augment.strong_augment` (RandAugment-style per-image distortions,
then Cutout). Defaults (options ``fixmatch.*``): τ = 0.95, λ_u = 1, as in the paper; the batch
ratio μ is the run's ``unlabelled_batch / batch_size``.
"""

from __future__ import annotations

import functools

import torch.nn.functional as F

from dlapps.data.augment import random_translate, strong_augment
from dlapps.semi.base import SemiMethod
from dlapps.semi.pseudo_label import pseudo_label_loss


class FixMatch(SemiMethod):
    name = "fixmatch"
    description = "confident weak-view labels learned on strong views (Sohn et al. 2020)"
    options = {"threshold": 0.95, "weight": 1.0, "shift": 0.0625}

    def __init__(self, net, config):
        super().__init__(net, config)
        self.threshold, self.weight = float(self.option("threshold")), float(self.option("weight"))
        self.shift_fraction = float(self.option("shift"))

    def forward(self, xl, yl, xu, yu, progress):
        weak = functools.partial(random_translate, max_shift=round(self.shift_fraction * xl.shape[-1]))
        logits_l = self.net(weak(xl))
        supervised = F.cross_entropy(logits_l, yl)
        xu_weak = weak(xu)
        unsupervised, mask, _ = pseudo_label_loss(self.net, xu_weak, self.threshold,
                                                  student_view=lambda _: strong_augment(xu))
        return {"loss": supervised + self.weight * unsupervised, "supervised_loss": supervised,
                "unsupervised_loss": unsupervised, "mask_rate": mask,
                "labelled_acc": (logits_l.argmax(1) == yl).float().mean()}
