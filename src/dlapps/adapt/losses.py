r"""The pieces several adaptation methods share, written once.

* :func:`domain_adversarial_loss` — a domain classifier G_d on (possibly reversed) features,
  logistic loss with d = 0 for source and 1 for target, optional per-sample weights
  (DANN, CDAN, CDAN+E).
* :func:`mmd` — the multi-kernel maximum mean discrepancy of DAN/WDAN:

  .. math::
      \mathrm{MMD}^2_k(p, q) = \lVert E_p[φ(x^s)] − E_q[φ(x^t)] \rVert^2_{\mathcal H}
        = E\,k(x^s, x'^s) + E\,k(x^t, x'^t) − 2 E\,k(x^s, x^t)

  with k = (1/m) Σ_u exp(−‖a − b‖² / (2 σ_u²)), a Gaussian family whose bandwidths are
  σ_u² = σ² · 2^u around σ² = the mean pairwise squared distance of the batch (no gradient).
  ``unbiased``: the U-statistic (diagonal terms left out); ``linear``: Gretton et al.'s
  linear-time estimate over disjoint pairs, h = k(s₁,s₂) + k(t₁,t₂) − k(s₁,t₂) − k(s₂,t₁).
  Source samples may carry weights w_i (WDAN), turning E_p into Σ w_i φ(x_i) / Σ w_i.
* :func:`coral` — Deep CORAL: ‖C_S − C_T‖²_F / (4 d²), C the d×d feature covariance.
* :func:`layer_outputs` — the activations of the chosen layers of a :class:`DomainAdaptationNet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.adapt.grl import grad_reverse


def domain_adversarial_loss(discriminator: nn.Module, features: torch.Tensor, n_source: int,
                            coeff: float, reverse: bool = True,
                            weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, accuracy) of ``discriminator`` telling the first ``n_source`` rows (d = 0) from the
    rest (d = 1), the features passing a gradient reversal layer of coefficient ``coeff``."""
    inputs = grad_reverse(features, coeff) if reverse else features
    logits = discriminator(inputs).squeeze(1)
    domains = torch.cat([torch.zeros(n_source), torch.ones(len(features) - n_source)]).to(logits)
    if weights is None:
        loss = F.binary_cross_entropy_with_logits(logits, domains)
    else:
        per_sample = F.binary_cross_entropy_with_logits(logits, domains, reduction="none")
        loss = (weights * per_sample).sum() / weights.sum()
    acc = ((logits > 0).to(domains) == domains).float().mean()
    return loss, acc


def gaussian_kernels(d2: torch.Tensor, sigma2: torch.Tensor,
                     powers: tuple[int, ...] = (-2, -1, 0, 1, 2)) -> torch.Tensor:
    """(1/m) Σ_u exp(−d² / (2 σ² 2^u)) for squared distances ``d2`` (any shape)."""
    return sum(torch.exp(-d2 / (2 * sigma2 * 2.0**u)) for u in powers) / len(powers)


def mmd(xs: torch.Tensor, xt: torch.Tensor, estimator: str = "unbiased",
        source_weights: torch.Tensor | None = None,
        powers: tuple[int, ...] = (-2, -1, 0, 1, 2)) -> torch.Tensor:
    """Multi-kernel MMD² between two batches of features (rows), see the module docstring."""
    xs, xt = xs.flatten(1).float(), xt.flatten(1).float()
    if estimator == "linear":  # O(n): disjoint pairs (s1, s2), (t1, t2)
        n = min(len(xs), len(xt)) // 2 * 2
        s1, s2, t1, t2 = xs[0:n:2], xs[1:n:2], xt[0:n:2], xt[1:n:2]
        d2 = [(a - b).pow(2).sum(1) for a, b in ((s1, s2), (t1, t2), (s1, t2), (s2, t1))]
        sigma2 = torch.cat(d2).mean().detach().clamp_min(1e-8)
        k = [gaussian_kernels(d, sigma2, powers) for d in d2]
        h = k[0] + k[1] - k[2] - k[3]
        w = 1.0 if source_weights is None else source_weights[0:n:2] * source_weights[1:n:2]
        return (w * h).mean()
    if estimator != "unbiased":
        from dlapps.errors import UnknownNameError

        raise UnknownNameError("MMD estimator", estimator, ("unbiased", "linear"))
    d2 = torch.cdist(torch.cat([xs, xt]), torch.cat([xs, xt])).pow(2)
    k = gaussian_kernels(d2, d2.mean().detach().clamp_min(1e-8), powers)
    ns, nt = len(xs), len(xt)
    kss, ktt, kst = k[:ns, :ns], k[ns:, ns:], k[:ns, ns:]
    w = torch.ones(ns, device=xs.device) if source_weights is None else source_weights
    w = w / w.sum()
    ww = (w[:, None] * w[None, :]).fill_diagonal_(0)  # the U-statistic leaves out i = j
    ss = (ww * kss).sum() / ww.sum()
    tt = (ktt.sum() - ktt.diagonal().sum()) / (nt * (nt - 1))
    st = (w[:, None] * kst).sum() / nt
    return ss + tt - 2 * st


def covariance(x: torch.Tensor) -> torch.Tensor:
    """The unbiased d×d covariance of the rows of ``x``."""
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / (len(x) - 1)


def coral(xs: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
    """‖C_S − C_T‖²_F / (4 d²) (Sun & Saenko, 2016)."""
    xs, xt = xs.flatten(1).float(), xt.flatten(1).float()
    d = xs.shape[1]
    return (covariance(xs) - covariance(xt)).pow(2).sum() / (4 * d * d)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Per-row Shannon entropy −Σ p log p (nats)."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(1)


LAYERS = ("features", "hidden1", "hidden2", "logits")


def layer_outputs(net, x: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The chosen activations of a :class:`DomainAdaptationNet` for images ``x`` (with grad):
    ``features`` (G_f's output), ``hidden1``/``hidden2`` (G_y's hidden layers after their
    activation, dropout), ``logits``; all of them are in the dict whatever ``layers`` asks."""
    unknown = [name for name in layers if name not in LAYERS]
    if unknown:
        from dlapps.errors import UnknownNameError

        raise UnknownNameError("layer", unknown[0], LAYERS)
    h = net.embed(x)
    out, k = {"features": h}, 0
    for module in net.classifier:  # Linear, then its ReLU (BN, dropout): keep the last output
        h = module(h)
        k += isinstance(module, nn.Linear)
        out[f"hidden{k}"] = h
    out["logits"] = out.pop(f"hidden{k}")
    return out
