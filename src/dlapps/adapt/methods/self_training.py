r"""Self-training with pseudo-labels (Lee, ICML 2013 workshops), alone or on top of any method.

The target images the network is confident about are labelled with its own predictions and
trained on as if the labels were true::

    L = L_base + α(p) · (1/n_t) Σ_{j∈T} 1[max_c f_c(x_j) > τ] · CE(f(x_j), argmax_c f_c(x_j))

    α(p) = 0                                for p < T1
           α_f (p − T1) / (T2 − T1)         for T1 ≤ p < T2
           α_f                              for p ≥ T2

L_base is the wrapped method's loss (source-only's cross-entropy for ``self-train``; DANN's
objective for ``dann+self-train``, and so on for any registered name + ``+self-train``). The
pseudo-labels carry no gradient and are recomputed at every step, through the network the base
method deploys (ADDA's target encoder, say); samples under the threshold τ contribute nothing.
Defaults (options ``method_options["self-train"]``): τ = 0.9, α_f = 1, T1 = 0.2, T2 = 0.6.
"""

from __future__ import annotations

import functools

import torch.nn.functional as F

from dlapps.adapt.losses import confident_pseudo_labels
from dlapps.adapt.methods.base import Method
from dlapps.adapt.methods.supervised import SourceOnly

SUFFIX = "+self-train"


def alpha_ramp(p: float, alpha_f: float, t1: float, t2: float) -> float:
    """Lee's α(t), with t the training progress p ∈ [0, 1]."""
    if p < t1:
        return 0.0
    return alpha_f * min(1.0, (p - t1) / max(t2 - t1, 1e-12))


class SelfTraining(Method):
    name = "self-train"
    description = "pseudo-labels on confident target predictions (Lee 2013), α(t) ramp"
    uses_target_images = True
    base: type[Method] = SourceOnly

    def __init__(self, net, config):
        super().__init__(net, config)
        self.base_method = self.base(net, config)
        opt = functools.partial(self.option, section="self-train")
        self.threshold = float(opt("threshold", 0.9))
        self.alpha_f = float(opt("alpha", 1.0))
        self.t1, self.t2 = float(opt("t1", 0.2)), float(opt("t2", 0.6))

    def pseudo_label_loss(self, logits):
        """(mean masked CE over the batch, fraction of confident samples)."""
        labels, confident = confident_pseudo_labels(logits, self.threshold)
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        return (per_sample * confident).sum() / len(logits), confident.float().mean()

    def forward(self, xs, ys, xt, yt, progress):
        out = dict(self.base_method(xs, ys, xt, yt, progress))
        alpha = alpha_ramp(progress, self.alpha_f, self.t1, self.t2)
        pseudo, confident = 0.0, 0.0
        if alpha > 0:
            pseudo, confident = self.pseudo_label_loss(self.base_method.logits(xt))
            out["loss"] = out["loss"] + alpha * pseudo
        return {**out, "pseudo_loss": pseudo, "pseudo_confident": confident, "alpha": alpha}

    def logits(self, x):
        return self.base_method.logits(x)

    def embed(self, x):
        return self.base_method.embed(x)

    def domain_logits(self, x):
        return self.base_method.domain_logits(x)


@functools.cache
def with_self_training(base: type[Method]) -> type[SelfTraining]:
    """The method ``<base.name>+self-train``: ``base`` with the pseudo-label loss added."""
    return type(f"{base.__name__}SelfTraining", (SelfTraining,), {
        "name": base.name + SUFFIX, "base": base, "uses_source": base.uses_source,
        "uses_target_labels": base.uses_target_labels, "trains_discriminator": base.trains_discriminator,
        "description": f"{base.name} + self-training on confident target pseudo-labels",
    })
