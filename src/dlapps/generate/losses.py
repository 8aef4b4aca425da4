"""The GAN losses, on discriminator outputs that are probabilities D(.) in (0, 1).

Goodfellow et al. (2014) set the game  min_G max_D  E_x log D(x) + E_z log(1 − D(G(z))).

* D maximises it, i.e. minimises  L_D = −E log D(x) − E log(1 − D(G(z)))  (binary
  cross-entropy with targets 1 for real and 0 for fake).
* The "true" minimax generator minimises  L_G = E log(1 − D(G(z))).  Early on D rejects the
  samples easily (D(G(z)) ≈ 0), where this curve is flat: ∂L_G/∂D = −1/(1 − D) ≈ −1, and through
  the sigmoid the gradient on D's logit is −D(G(z)) ≈ 0, so G barely learns.
* The non-saturating generator minimises  L_G = −E log D(G(z))  instead: the same fixed point,
  but the logit gradient is −(1 − D(G(z))) ≈ −1 exactly where G is worst.

One function with a flag (as torchgan's ``minimax_generator_loss(dgz, nonsaturating=True)``), so
the two losses differ in one line, not in a copied training loop. Logs are clamped at −100 as
``F.binary_cross_entropy`` does, so a saturated D gives a large, finite loss; unlike it, a NaN
D output gives a NaN loss (which the training loop reports with its step) rather than an
exception from inside the loss.
"""

from __future__ import annotations

import torch

from dlapps.errors import UnknownNameError

GENERATOR_LOSSES = ("nonsat", "minimax")


def _log(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p).clamp_min(-100.0)


def _log1m(p: torch.Tensor) -> torch.Tensor:
    return torch.log1p(-p).clamp_min(-100.0)


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """L_D = −E log D(x) − E log(1 − D(G(z)))."""
    return -_log(d_real).mean() - _log1m(d_fake).mean()


def generator_loss(d_fake: torch.Tensor, nonsaturating: bool = True) -> torch.Tensor:
    """Non-saturating −E log D(G(z)), or with ``nonsaturating=False`` the minimax E log(1 − D(G(z)))."""
    return -_log(d_fake).mean() if nonsaturating else _log1m(d_fake).mean()


def is_nonsaturating(name: str) -> bool:
    """``"nonsat"`` -> True, ``"minimax"`` -> False; anything else is an error listing both."""
    if name not in GENERATOR_LOSSES:
        raise UnknownNameError("--loss value", name, GENERATOR_LOSSES)
    return name == "nonsat"
