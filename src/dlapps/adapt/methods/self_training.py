r"""Self-training with pseudo-labels (Lee, ICML 2013 workshops), alone or on top of any method.

It is semi-supervised pseudo-labelling (:mod:`dlapps.semi.pseudo_label`, the one implementation)
with the target domain as the unlabelled set. The target images a labeller f̄ is confident about
are labelled with its predictions, and the network f trains on them as if the labels were true::

    L = L_base + α(p) · (1/n_t) Σ_{j∈T} 1[max_c f̄_c(x_j) > τ] · CE(f(a(x_j)), argmax_c f̄_c(x_j))

    α(p) = 0                                for p < T1
           α_f (p − T1) / (T2 − T1)         for T1 ≤ p < T2
           α_f                              for p ≥ T2

L_base is the wrapped method's loss (source-only's cross-entropy for ``self-train``; DANN's
objective for ``dann+self-train``, and so on for any registered name + ``+self-train``). The
pseudo-labels carry no gradient and are recomputed at every step, through the network the base
method deploys (ADDA's target encoder, say); samples under the threshold τ contribute nothing.

Two choices of f̄ and a:

* Lee's own form (options ``ema=0, shift=0``): f̄ = f and a = identity — the network labels
  itself in the same forward pass. The confident rows then already have a small loss, and on
  MNIST → MNIST-M it leaves DANN where it was (docs/RESULTS.md).
* The default: f̄ is a *mean teacher* (Tarvainen & Valpola, NeurIPS 2017), the exponential moving
  average θ̄ ← ema·θ̄ + (1 − ema)·θ of the network's weights (ema = 0.99: about the last 100
  steps), and a(x) shifts each image by up to ``shift`` = 2 pixels, so the student must agree
  with the teacher's label on a perturbed view (the weak augmentation of FixMatch, Sohn et al.
  2020). The average damps the step-to-step swings of an adversarial method's predictions, so
  the labels no longer follow them. The teacher only labels; the network f is what is deployed.

With ``view = "strong"`` the student learns the teacher's label on FixMatch's *strong* view
instead (:func:`~dlapps.data.augment.strong_augment`: RandAugment-style affine and photometric
distortions, then Cutout), the consistency that lets FixMatch-style self-training go past what
the weak shift reaches (AdaMatch, Berthelot et al. 2022, uses it for domain adaptation).

Defaults (options ``method_options["self-train"]``): τ = 0.9, α_f = 1, T1 = 0.2, T2 = 0.6,
ema = 0.99, shift = 2, view = "shift". The teacher's weights are part of the checkpoint, so a
resumed run goes on with the same teacher.
"""

from __future__ import annotations

import copy
import functools

from dlapps.adapt.methods.base import Method
from dlapps.adapt.methods.supervised import SourceOnly
from dlapps.data.augment import random_translate, strong_augment
from dlapps.errors import ConfigError
from dlapps.semi.pseudo_label import alpha_ramp, ema_update, pseudo_label_loss

SUFFIX = "+self-train"


class SelfTraining(Method):
    name = "self-train"
    description = "pseudo-labels on confident target predictions (Lee 2013), α(t) ramp, mean teacher"
    uses_target_images = True
    base: type[Method] = SourceOnly
    options = {"threshold": 0.9, "alpha": 1.0, "t1": 0.2, "t2": 0.6, "shift": 2, "ema": 0.99, "view": "shift"}
    VIEWS = ("shift", "strong")

    def __init__(self, net, config):
        super().__init__(net, config)
        self.base_method = self.base(net, config)
        opt = functools.partial(self.option, section="self-train")
        self.threshold, self.alpha_f = float(opt("threshold")), float(opt("alpha"))
        self.t1, self.t2 = float(opt("t1")), float(opt("t2"))
        self.shift, self.ema, self.view = int(opt("shift")), float(opt("ema")), opt("view")
        if self.view not in self.VIEWS:
            raise ConfigError(f"self-train's view must be one of {', '.join(self.VIEWS)}, got {self.view!r}")
        # the teacher that labels: a weight average of the network (mean teacher) when ema > 0
        self.teacher = copy.deepcopy(self.base_method).requires_grad_(False) if self.ema else None
        # the perturbed copy the student learns from (None: Lee's own form, one pass labels and learns)
        self.student_view = None
        if self.view == "strong":
            self.student_view = strong_augment
        elif self.shift or self.teacher is not None:
            self.student_view = functools.partial(random_translate, max_shift=self.shift)

    def update_teacher(self) -> None:
        """teacher ← ema · teacher + (1 − ema) · network, once per step (buffers copied)."""
        ema_update(self.teacher, self.base_method, self.ema)

    def pseudo_label_loss(self, xt):
        """(mean masked CE over the batch, fraction of confident samples). With ``shift`` > 0 or
        the strong view the labels come from the unperturbed batch (no gradient) and the loss
        from a perturbed copy."""
        teacher = None if self.teacher is None else self.teacher.logits
        loss, confident, _ = pseudo_label_loss(self.base_method.logits, xt, self.threshold,
                                               teacher=teacher, student_view=self.student_view)
        return loss, confident

    def forward(self, xs, ys, xt, yt, progress):
        if self.teacher is not None and self.training:
            self.update_teacher()
        out = dict(self.base_method(xs, ys, xt, yt, progress))
        alpha = alpha_ramp(progress, self.alpha_f, self.t1, self.t2)
        pseudo, confident = 0.0, 0.0
        if alpha > 0:
            pseudo, confident = self.pseudo_label_loss(xt)
            out["loss"] = out["loss"] + alpha * pseudo
        return {**out, "pseudo_loss": pseudo, "pseudo_confident": confident, "alpha": alpha}

    def open_gate(self, source_acc: float, progress: float) -> None:
        self.base_method.open_gate(source_acc, progress)

    def gate_open(self) -> bool:
        return self.base_method.gate_open()

    def param_groups(self) -> list[dict]:
        return self.base_method.param_groups()  # the base's rates (ADDA's); the teacher is not trained

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
        "description": f"{base.name} + self-training on a mean teacher's confident target pseudo-labels",
    })
