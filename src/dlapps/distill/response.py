"""Response-based knowledge: the teacher's softened outputs (Hinton, Vinyals & Dean 2015).

With temperature T, p^T = softmax(z / T). The student s learns from the labels and from the
teacher t's soft targets:

    L = (1 − α) · CE(y, s) + α · T² · KL(p_t^T ‖ p_s^T),
    KL(p ‖ q) = (1/B) Σ_i Σ_k p_ik (log p_ik − log q_ik).

The gradient of the soft term scales as 1/T², so the T² keeps its weight against the hard term
when T changes (Hinton et al. §2). α = 0 is cross-entropy alone (the student from scratch); at
high T the gradient tends to (s − t)/(B·K) on zero-mean logits: matching logits. Defaults T = 4,
α = 0.9.

torchdistill's ``KDLoss`` is the same loss with its α on the cross-entropy: ours at α equals its
``alpha = 1 − α`` (tests/test_distill.py checks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlapps.distill.base import Distillation


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(t/T) ‖ softmax(s/T)), summed over classes, averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits / T, dim=1), F.log_softmax(teacher_logits / T, dim=1),
                    reduction="batchmean", log_target=True)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, T: float,
            alpha: float) -> dict[str, torch.Tensor]:
    """``loss`` = (1 − α)·CE(y, s) + α·T²·KL(p_t^T ‖ p_s^T), with its ``ce`` and ``kl`` parts."""
    ce = F.cross_entropy(student_logits, y)
    kl = soft_kl(student_logits, teacher_logits, T)
    return {"loss": (1 - alpha) * ce + alpha * T * T * kl, "ce": ce.detach(), "kl": kl.detach()}


class Response(Distillation):
    """Hinton et al.'s knowledge distillation on the logits."""

    name = "response"
    description = "response-based: soft targets at temperature T (Hinton et al. 2015)"
    settings = ("T", "alpha")

    def objective(self, s, t, f_s, f_t, y) -> dict[str, torch.Tensor]:
        return kd_loss(s, t, y, self.config["T"], self.config["alpha"])
