r"""Pseudo-labelling (Lee, ICML 2013 workshop "Pseudo-Label"), the one implementation in dlapps.

Unlabelled images are labelled with the class a network predicts for them, and the network trains
on those labels as if they were true. Lee's objective over n labelled and n' unlabelled images::

    L = (1/n) Σ_m CE(y_m, f(x_m)) + α(t) · (1/n') Σ_m CE(y'_m, f(x'_m)),   y'_m = argmax_c f_c(x'_m)

    α(t) = 0                                for t < T1
           α_f (t − T1) / (T2 − T1)         for T1 ≤ t < T2
           α_f                              for t ≥ T2

with α_f = 3 in the paper; the pseudo-labels are recomputed at every weight update and carry no
gradient. α(t) starts at 0 so the network first learns from the labels alone; its early
predictions would otherwise teach it its own mistakes.

:func:`pseudo_label_loss` generalises the second term the way later methods do, and every user
in dlapps goes through it:

* a **threshold** τ: only rows whose top softmax probability exceeds τ count (Lee: τ = 0, every
  row; FixMatch: τ = 0.95; domain adaptation's self-training: 0.9). The sum is divided by the
  batch size, so unconfident rows contribute zero, not an average over fewer rows;
* a **teacher** that labels (a mean teacher, an EMA of the weights, in domain adaptation's
  self-training) instead of the network itself;
* a **student view**: the network learns the label on another view of the image (a shifted copy
  in self-training; FixMatch's strong augmentation of the weakly augmented image it labelled).

Users: ``dlapps semi``'s ``pseudo-label`` and ``fixmatch``, and ``dlapps adapt``'s ``self-train``
(and every ``<method>+self-train``), which is this loss on the target domain.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.semi.base import SemiMethod

Logits = Callable[[torch.Tensor], torch.Tensor]


def alpha_ramp(t: float, alpha_f: float, t1: float, t2: float) -> float:
    """Lee's α(t): 0 before T1, linear from 0 to α_f between T1 and T2, α_f from T2 on."""
    if t < t1:
        return 0.0
    return alpha_f * min(1.0, (t - t1) / max(t2 - t1, 1e-12))


def confident_pseudo_labels(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax labels, mask of rows whose top softmax probability exceeds ``threshold``), no grad."""
    probs = logits.detach().float().softmax(1)
    confidence, labels = probs.max(1)
    return labels, confidence > threshold


def pseudo_label_loss(
    logits: Logits,
    x: torch.Tensor,
    threshold: float = 0.0,
    *,
    teacher: Logits | None = None,
    student_view: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, fraction of confident rows, pseudo-labels) for the unlabelled batch ``x``.

    The labels are ``argmax teacher(x)`` (the network ``logits`` itself when no teacher is
    given), kept where confident; the loss is the cross-entropy of ``logits(student_view(x))``
    (``logits(x)`` when no view is given) against them, summed over confident rows and divided
    by the batch size. With neither teacher nor view (Lee's own form) one forward pass serves
    both, as in the paper.
    """
    if teacher is None and student_view is None:
        out = logits(x)
        labels, confident = confident_pseudo_labels(out, threshold)
    else:
        with torch.no_grad():
            labels, confident = confident_pseudo_labels((teacher or logits)(x), threshold)
        out = logits(student_view(x) if student_view is not None else x)
    per_sample = F.cross_entropy(out, labels, reduction="none")
    return (per_sample * confident).sum() / len(out), confident.float().mean(), labels


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher ← decay · teacher + (1 − decay) · student for the weights; buffers copied (the
    mean teacher of Tarvainen & Valpola 2017; also the labeller of self-training)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s, 1 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


class PseudoLabel(SemiMethod):
    """Lee's method as the lecture runs it: the network labels every unlabelled image of the step
    in the same forward pass (τ = 0), α(t) ramps from T1 to T2 up to α_f = 3. Options
    ``pseudo-label.*``: ``alpha`` (α_f), ``t1``, ``t2`` (fractions of training), ``threshold``."""

    name = "pseudo-label"
    description = "Lee 2013: argmax labels on unlabelled images, weight α(t) ramped to α_f = 3"
    options = {"alpha": 3.0, "t1": 0.1, "t2": 0.5, "threshold": 0.0}

    def __init__(self, net: nn.Module, config) -> None:
        super().__init__(net, config)
        self.alpha_f, self.threshold = float(self.option("alpha")), float(self.option("threshold"))
        self.t1, self.t2 = float(self.option("t1")), float(self.option("t2"))

    def forward(self, xl, yl, xu, yu, progress):
        supervised, acc = self.supervised_loss(xl, yl)
        alpha = alpha_ramp(progress, self.alpha_f, self.t1, self.t2)
        out = {"supervised_loss": supervised, "labelled_acc": acc, "alpha": alpha}
        if alpha == 0.0:
            return {"loss": supervised, **out, "pseudo_loss": 0.0}
        pseudo, confident, _ = pseudo_label_loss(self.net, xu, self.threshold)
        return {"loss": supervised + alpha * pseudo, **out, "pseudo_loss": pseudo,
                "pseudo_confident": confident}
