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
* :func:`conditional_entropy` — the cluster assumption's penalty (VADA, DIRT-T):
  (1/n) Σ_i −Σ_c p_c(x_i) log p_c(x_i), p = softmax(logits), low when every prediction is confident.
* :func:`vat_loss` — virtual adversarial training (Miyato et al., TPAMI 2018), as VADA and DIRT-T
  use it on the network's normalised input z: the KL between the prediction at z and at z + r_adv,

  .. math::
      L_{vat} = \frac{1}{n} \sum_i \mathrm{KL}\big(p(z_i) \,\|\, p(z_i + r_{adv,i})\big), \qquad
      r_{adv} = ε \frac{d}{\lVert d \rVert}, \quad
      d = ∇_r \mathrm{KL}\big(p(z) \,\|\, p(z + r)\big)\big|_{r = ξ u / \lVert u \rVert},\ u ∼ N(0, I)

  with p(z) held fixed (no gradient), norms over each sample's values, ε the ball's radius and ξ
  small: d is one power iteration towards the top eigenvector of the KL's Hessian H at r = 0
  (d ≈ ξ H u / ‖u‖), the direction the prediction is most sensitive to (:func:`vat_direction`).
* :func:`class_confusion` — MCC (Jin et al., ECCV 2020) on a target batch of n rows and K classes:

  .. math::
      Ŷ = \mathrm{softmax}(\text{logits} / T), \quad
      w_i = \frac{n\,(1 + e^{−H(ŷ_i)})}{\sum_j (1 + e^{−H(ŷ_j)})}, \quad
      C = Ŷ^⊤ \mathrm{diag}(w)\, Ŷ, \quad
      \tilde C_{jk} = \frac{C_{jk}}{\sum_{k'} C_{jk'}}, \quad
      L_{mcc} = \frac{1}{K} \sum_{j ≠ k} \tilde C_{jk}

  the weights w (no gradient) let certain predictions count more; the off-diagonal mass of the
  row-normalised confusion is how often the batch's predictions mix two classes.
"""

from __future__ import annotations

from collections.abc import Callable

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
    """The unbiased d×d covariance of the rows of ``x``, in float32 outside autocast (a bf16
    matrix product would round the small differences CORAL compares)."""
    with torch.autocast(x.device.type, enabled=False):
        centred = x.float() - x.float().mean(0, keepdim=True)
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


def conditional_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_i −Σ_c p_ic log p_ic with p = softmax(logits) (from log-softmax: stable)."""
    log_p = logits.float().log_softmax(1)
    return -(log_p.exp() * log_p).sum(1).mean()


def _unit(d: torch.Tensor) -> torch.Tensor:
    """Each sample (row) divided by its L2 norm over all its values."""
    return d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (d.dim() - 1))


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Per row KL(softmax(p_logits) ‖ softmax(q_logits))."""
    log_p, log_q = p_logits.float().log_softmax(1), q_logits.float().log_softmax(1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def vat_direction(logits_fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, logits: torch.Tensor,
                  xi: float = 1e-6, generator: torch.Generator | None = None) -> torch.Tensor:
    """The unit (per sample) direction d of one power iteration from r0 = ξ·unit(u), u ~ N(0, I):
    d ∝ ∇_r KL(softmax(logits) ‖ softmax(logits_fn(z + r)))|_{r=r0}, without gradient. Computed in
    float32 outside autocast: a step of ξ = 1e-6 vanishes in bf16."""
    device = z.device if generator is None else generator.device
    u = torch.randn(z.shape, generator=generator, device=device).to(z.device)
    with torch.autocast(z.device.type, enabled=False):
        r = (xi * _unit(u)).requires_grad_()
        kl = _kl(logits.detach(), logits_fn(z.detach().float() + r)).sum()
        (grad,) = torch.autograd.grad(kl, r)
    return _unit(grad)


def vat_loss(logits_fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, logits: torch.Tensor,
             radius: float, xi: float = 1e-6, generator: torch.Generator | None = None,
             reduction: str = "mean") -> torch.Tensor:
    """Virtual adversarial loss: KL(softmax(logits) ‖ softmax(logits_fn(z + r_adv))), r_adv = radius ·
    :func:`vat_direction` (``logits`` are the clean predictions at z, held fixed); the mean over
    rows, or each row's (``reduction="none"``)."""
    r_adv = radius * vat_direction(logits_fn, z, logits, xi, generator)
    kl = _kl(logits.detach(), logits_fn(z + r_adv.to(z.dtype)))
    return kl.mean() if reduction == "mean" else kl


def class_confusion(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """MCC's loss: the off-diagonal mass of the entropy-weighted, row-normalised class confusion
    of softmax(logits / T), divided by the number of classes (module docstring)."""
    n, classes = logits.shape
    probs = (logits.float() / temperature).softmax(1)
    w = 1 + torch.exp(-entropy(probs.detach()))
    with torch.autocast(logits.device.type, enabled=False):  # float32, as every loss here
        confusion = probs.T @ (probs * (n * w / w.sum())[:, None])
    confusion = confusion / confusion.sum(1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / classes
