"""The gradient reversal layer (Ganin & Lempitsky, 2015).

Identity in the forward pass; in the backward pass it multiplies the incoming gradient by -λ::

    R_λ(x) = x,        dR_λ/dx = -λ I

Placed between the feature extractor G_f and the domain classifier G_d, it lets one backward pass
of ``L_y + L_d`` perform the saddle-point update of DANN: G_d descends L_d with weight 1 while
G_f receives ``∂L_y/∂θ_f - λ ∂L_d/∂θ_f``, i.e. it learns features that confuse G_d. λ scales only
the gradient reaching G_f. The module's ``coeff`` is set by a schedule at every step.
"""

from __future__ import annotations

import torch
from torch import nn


class GradientReversalFunction(torch.autograd.Function):
    """Autograd function: ``forward(x, coeff) = x``; ``backward(g) = -coeff * g``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad_output, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Apply the gradient reversal layer with coefficient λ = ``coeff``."""
    return GradientReversalFunction.apply(x, coeff)


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`; set ``.coeff`` (λ) from a schedule as training goes."""

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff:.4g}"
