"""The student from scratch: the baseline every distilled student is compared with.

The same network, the same labels, the same augmentation (x̃ = random_translate(x, shift)), the
same optimizer and epochs, and no teacher:

    L = CE(y, s) = −(1/B) Σ_i log softmax(s_i)_{y_i},      s = student(x̃).

The teacher trained in a run is this module too (with the teacher's network).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlapps.distill.base import Distillation


class Scratch(Distillation):
    """Cross-entropy on the labels only."""

    name = "scratch"
    description = "student from scratch (labels only)"
    uses_teacher = False

    def objective(self, s, t, f_s, f_t, y) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(s, y)
        return {"loss": ce, "ce": ce.detach()}
