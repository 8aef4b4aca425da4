"""Feature-based knowledge: hints from the teacher's hidden layer (FitNets, Romero et al. 2015).

The student's penultimate features f_s (the input of its last ``nn.Linear``, dimension d_s) are
mapped by a trained regressor r(f) = W f + b (d_s → d_t) onto the teacher's penultimate features
f_t (the hint), and the L2 hint loss is added to the label loss:

    L_hint = (1/(B·d_t)) Σ_i ‖f_t,i − r(f_s,i)‖²,
    L      = CE(y, s) + β · L_hint                     (β = ``hint_weight``, default 1).

FitNets trains in two stages (hints first, then KD); here both terms act from the first step, as
the lecture's "added to CE". The regressor is trained with the student (it is in the checkpoint)
and dropped afterwards: the exported student is the plain network. The mean over the d_t
dimensions (FitNets writes ½‖·‖²) only rescales β.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.distill.base import Distillation


def hint_loss(regressed: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """(1/(B·d)) Σ ‖f_t − r(f_s)‖²: the mean squared error of the regressed student features."""
    return F.mse_loss(regressed, teacher_features)


class Feature(Distillation):
    """FitNets hints on the penultimate layer, through a linear regressor."""

    name = "feature"
    description = "feature-based: FitNets hint on the penultimate features (Romero et al. 2015)"
    settings = ("hint_weight",)
    uses_features = True

    def __init__(self, student, teacher, config, shape) -> None:
        super().__init__(student, teacher, config, shape)
        self.regressor = nn.Linear(self.student_tap.dim, self.teacher_tap.dim)

    def objective(self, s, t, f_s, f_t, y) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(s, y)
        hint = hint_loss(self.regressor(f_s), f_t)
        return {"loss": ce + self.config["hint_weight"] * hint, "ce": ce.detach(), "hint": hint.detach()}
