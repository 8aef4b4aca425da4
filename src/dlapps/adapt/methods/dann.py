r"""DANN: domain-adversarial training of neural networks (Ganin & Lempitsky, ICML 2015; Ganin et
al., JMLR 2016).

With feature extractor G_f, label predictor G_y and domain classifier G_d, DANN seeks the saddle
point of

.. math::
    E(θ_f, θ_y, θ_d) = \frac{1}{n_s}\sum_{i∈S} L_y(G_y(G_f(x_i)), y_i)
                      - λ \Big(\frac{1}{n}\sum_{i∈S∪T} L_d(G_d(G_f(x_i)), d_i)\Big)

minimised over (θ_f, θ_y) and maximised over θ_d, with L_d the logistic loss and d = 0 for source,
1 for target. One backward pass of ``L_y + L_d`` through a gradient reversal layer R_λ between
G_f and G_d gives exactly the paper's updates:

    θ_f ← θ_f − μ(∂L_y/∂θ_f − λ ∂L_d/∂θ_f),  θ_y ← θ_y − μ ∂L_y/∂θ_y,  θ_d ← θ_d − μ ∂L_d/∂θ_d

λ follows the schedule λ_p = 2/(1 + exp(−γ p)) − 1 (γ = 10) unless configured otherwise. Source
and target go through G_f as one batch, so batch-norm statistics (when enabled) are shared.

``dann-nogrl`` keeps the three parts but drops the reversal: G_f then *helps* G_d separate the
domains (the course reports' question 1), which must not beat source-only on the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlapps.adapt.losses import domain_adversarial_loss
from dlapps.adapt.methods.base import Method, accuracy


class DANN(Method):
    name = "dann"
    description = "domain-adversarial training with a gradient reversal layer"
    uses_target_images = True
    trains_discriminator = True
    reverse = True

    def forward(self, xs, ys, xt, yt, progress):
        lam = self.alignment(progress)
        features = self.net.embed(torch.cat([xs, xt]))
        logits = self.net.classifier(features[: len(xs)])
        cls_loss = F.cross_entropy(logits, ys)
        domain_loss, domain_acc = domain_adversarial_loss(self.net.discriminator, features, len(xs),
                                                          lam, self.reverse)
        return {
            "loss": cls_loss + domain_loss,
            "cls_loss": cls_loss,
            "domain_loss": domain_loss,
            "train_acc": accuracy(logits, ys),
            "train_domain_acc": domain_acc,
            "lambda": lam,
        }


class DANNNoGRL(DANN):
    name = "dann-nogrl"
    description = "DANN's three parts without the gradient reversal (features help G_d)"
    reverse = False
