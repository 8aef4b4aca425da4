r"""DAN: deep adaptation networks (Long et al., ICML 2015), and WDAN, its class-weighted form
(Yan et al., CVPR 2017).

DAN adds to the source cross-entropy the multi-kernel MMD between source and target
activations on the chosen layers ℓ ∈ L (by default G_y's two hidden layers and its logits, the
paper's fc6–fc8; on a pretrained backbone, whose G_y is one linear layer, the bottleneck features
and the logits, as TLlib's DAN)::

    min_θ  (1/n_s) Σ_i L_y(θ(x^s_i), y^s_i) + λ_p · w · Σ_{ℓ∈L} MMD²_k(D^s_ℓ, D^t_ℓ)

with MMD²_k the multi-kernel estimate of :func:`dlapps.adapt.losses.mmd` (Gaussian family of 5
bandwidths around the batch's mean squared distance; ``unbiased`` U-statistic or ``linear``
time), λ_p the DANN schedule (γ = 10) and w the method's weight (option ``weight``, default 1).
Options (``method_options["dan"]``): ``layers``, ``estimator``, ``weight``.

WDAN corrects for a class-prior shift between domains: each source sample is weighted by
α_{y} = p̂_T(y) / p̂_S(y) in the source kernel mean, E_p φ → Σ_i α_{y_i} φ(x_i) / Σ_i α_{y_i}, where
p̂_S is a running average of the source labels' frequencies and p̂_T of the target's
pseudo-labels (argmax predictions whose probability exceeds ``threshold``, default 0.5), so the
MMD compares target features with a source re-weighted to the target's class proportions.
"""

from __future__ import annotations

import torch
from torch import nn

from dlapps.adapt.losses import mmd
from dlapps.adapt.methods.base import Method, accuracy
from dlapps.errors import ConfigError
from dlapps.semi.pseudo_label import confident_pseudo_labels

DEFAULT_LAYERS = ("hidden1", "hidden2", "logits")


def network_layers(net) -> tuple[str, ...]:
    """The layer names :func:`~dlapps.adapt.losses.layer_outputs` gives for ``net``."""
    hidden = sum(isinstance(m, nn.Linear) for m in net.classifier) - 1
    return ("features", *(f"hidden{k + 1}" for k in range(hidden)), "logits")


class DAN(Method):
    name = "dan"
    description = "multi-kernel MMD between source and target activations (discrepancy-based)"
    uses_target_images = True
    options = {"layers": DEFAULT_LAYERS, "weight": 1.0, "estimator": "unbiased"}

    def __init__(self, net, config):
        super().__init__(net, config)
        self.layers = tuple(self.option("layers"))
        available = network_layers(net)
        if self.layers == DEFAULT_LAYERS and not set(self.layers) <= set(available):
            self.layers = ("features", "logits")  # a backbone's G_y has no hidden layers
        missing = [k for k in self.layers if k not in available]
        if missing:
            raise ConfigError(f"{self.name}: this network has no layer {missing[0]!r}; its layers: "
                              f"{', '.join(available)}")
        self.weight = float(self.option("weight"))
        self.estimator = self.option("estimator")

    def source_weights(self, target_logits: torch.Tensor, ys: torch.Tensor) -> torch.Tensor | None:
        """Per-sample weights of the source batch in the kernel mean (None: uniform)."""
        return None

    def discrepancy(self, source: torch.Tensor, target: torch.Tensor,
                    weights: torch.Tensor | None) -> torch.Tensor:
        """The distance between the two domains' activations on one layer."""
        return mmd(source, target, self.estimator, source_weights=weights)

    def forward(self, xs, ys, xt, yt, progress):
        lam = self.alignment(progress)
        outs, cls_loss = self.source_and_target(xs, ys, xt, self.layers)
        n = len(xs)
        weights = self.source_weights(outs["logits"][n:], ys)
        distance = sum(self.discrepancy(outs[k][:n], outs[k][n:], weights) for k in self.layers)
        return {"loss": cls_loss + lam * self.weight * distance, "cls_loss": cls_loss,
                "domain_loss": distance, "train_acc": accuracy(outs["logits"][:n], ys), "lambda": lam}


class WDAN(DAN):
    name = "wdan"
    description = "class-weighted MMD (target class priors from pseudo-labels): DAN under label shift"
    momentum = 0.9  # of the running class-frequency estimates
    options = {**DAN.options, "threshold": 0.5}

    def __init__(self, net, config):
        super().__init__(net, config)
        classes = net.classifier[-1].out_features
        self.register_buffer("prior_s", torch.full((classes,), 1.0 / classes))
        self.register_buffer("prior_t", torch.full((classes,), 1.0 / classes))
        self.threshold = float(self.option("threshold"))

    def source_weights(self, target_logits, ys):
        if self.training:
            with torch.no_grad():
                m = self.momentum
                counts = torch.bincount(ys, minlength=len(self.prior_s)).to(self.prior_s)
                self.prior_s.mul_(m).add_((1 - m) * counts / counts.sum())
                labels, confident = confident_pseudo_labels(target_logits, self.threshold)
                if confident.any():
                    counts = torch.bincount(labels[confident], minlength=len(self.prior_t)).to(self.prior_t)
                    self.prior_t.mul_(m).add_((1 - m) * counts / counts.sum())
        return (self.prior_t / self.prior_s.clamp_min(1e-6))[ys]
