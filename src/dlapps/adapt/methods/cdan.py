r"""CDAN and CDAN+E: conditional domain adversarial networks (Long et al., NeurIPS 2018).

The domain discriminator D sees the features f = G_f(x) *conditioned on* the predictions
g = softmax(G_y(f)) through the multilinear map T, so it aligns the joint distribution of
features and classes rather than the features alone::

    T(f, g) = f ⊗ g                          (flattened outer product, d_f · C values)
    T(f, g) = (R_f f) ⊙ (R_g g) / √d          (random multilinear map when d_f · C > 4096;
                                               R_f, R_g fixed Gaussian, d = 1024)

    min_{G_f, G_y} max_D   L_y − λ_p E_{x∈S∪T} w(x) L_d(D(T(f, g)), d)

with a gradient reversal layer between T and D (g is used without gradient, as in the paper's
code) and λ_p the DANN schedule. CDAN+E weights each sample by its certainty,
w(x) = 1 + exp(−H(g)) (H the entropy), normalised to sum to the batch size within each
domain; plain CDAN has w = 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlapps.adapt.losses import domain_adversarial_loss, entropy
from dlapps.adapt.methods.base import accuracy
from dlapps.adapt.methods.dann import DANN


class MultilinearMap(nn.Module):
    """T(f, g): the outer product f ⊗ g, or its random approximation above ``max_dim`` values."""

    def __init__(self, feature_dim: int, classes: int, max_dim: int = 4096, random_dim: int = 1024):
        super().__init__()
        self.random = feature_dim * classes > max_dim
        self.out_dim = random_dim if self.random else feature_dim * classes
        if self.random:
            self.register_buffer("r_f", torch.randn(feature_dim, random_dim))
            self.register_buffer("r_g", torch.randn(classes, random_dim))

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.random:
            return (f @ self.r_f) * (g @ self.r_g) / math.sqrt(self.out_dim)
        return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)


class CDAN(DANN):
    """DANN's flags and λ_p schedule, with its own discriminator on T(f, g)."""

    name = "cdan"
    description = "conditional adversarial: the discriminator sees features ⊗ predictions"
    entropy_weighting = False
    options = {"max_dim": 4096, "random_dim": 1024, "hidden": 500}

    def __init__(self, net, config):
        super().__init__(net, config)
        classes = net.classifier[-1].out_features
        self.map = MultilinearMap(net.feature_dim, classes, int(self.option("max_dim")),
                                  int(self.option("random_dim")))
        hidden = int(self.option("hidden"))
        self.discriminator = nn.Sequential(nn.Linear(self.map.out_dim, hidden), nn.ReLU(inplace=True),
                                           nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                           nn.Linear(hidden, 1))

    def conditioned(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.map(features, logits.detach().float().softmax(1).to(features.dtype))

    def forward(self, xs, ys, xt, yt, progress):
        lam = self.alignment(progress)
        outs, cls_loss = self.source_and_target(xs, ys, xt)
        n, logits = len(xs), outs["logits"]
        weights = None
        if self.entropy_weighting:
            w = 1.0 + torch.exp(-entropy(logits.detach().float().softmax(1)))
            weights = torch.cat([w[:n] / w[:n].sum() * n, w[n:] / w[n:].sum() * (len(w) - n)])
        domain_loss, domain_acc = domain_adversarial_loss(
            self.discriminator, self.conditioned(outs["features"], logits), n, lam, weights=weights)
        return {"loss": cls_loss + domain_loss, "cls_loss": cls_loss, "domain_loss": domain_loss,
                "train_acc": accuracy(logits[:n], ys), "train_domain_acc": domain_acc, "lambda": lam}

    @torch.no_grad()
    def domain_logits(self, x):
        features = self.net.embed(x)
        return self.discriminator(self.conditioned(features, self.net.classifier(features))).squeeze(1)


class CDANE(CDAN):
    name = "cdan+e"
    description = "CDAN with entropy conditioning: certain predictions weigh more"
    entropy_weighting = True


